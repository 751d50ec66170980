#!/usr/bin/env bash
# make bench: overhead of tracing every page fault, against untraced runs and against perf and
# bpftrace on the same workload. Interleaved rounds, medians, ratios; never a single run.
#   ROUNDS (default 11)  PAGES (default 262144 = 1 GiB, one fault per page)
#   CHUNK (default 16384 = 64 MiB): pages per mmap; each chunk is unmapped after its writes, so
#   the run reuses the same guest memory instead of touching 1 GiB of fresh host memory (which
#   made single runs vary by +-40% on these VMs)
#   STACK_PAGES (default 16384): faults per run of the call-stack comparison (kscope faults
#   --stacks against perf record --call-graph dwarf and -g, their own interleaved rounds with an
#   untraced baseline of the same size: perf's DWARF mode copies 8 KiB of stack per fault, 130 MiB
#   of perf.data at this size)
#   ONLY=faults  run the page-fault comparisons only
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
KSCOPE=$BUILD/kscope
PROG=$BUILD/progs/faultprog
ROUNDS=${ROUNDS:-11}
PAGES=${PAGES:-262144}
STACK_PAGES=${STACK_PAGES:-16384}
CHUNK=${CHUNK:-16384}
OUT=bench/results
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ $(id -u) -ne 0 ]]; then echo "bench: needs root (BPF, perf)" >&2; exit 1; fi
have() { command -v "$1" >/dev/null 2>&1; }

# bpftrace resolves tracepoints through tracefs, which this VM does not mount by default.
if [[ ! -d /sys/kernel/tracing/events ]]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "bench: cannot mount tracefs; bpftrace will fail" >&2
fi

configs=(untraced kscope)
have perf && configs+=(perf-record)
have bpftrace && configs+=(bpftrace-printf)

stack_configs=(untraced kscope-stacks)
have perf && stack_configs+=(perf-dwarf perf-fp)

# Runs one configuration; prints the workload's own elapsed_ns (the touch loop only, so tool
# start-up and teardown are not counted) and, for kscope, the records it lost.
run_one() {
  local cfg=$1 PAGES=${2:-$PAGES} log=$tmp/$1.log
  case $cfg in
    untraced) "$PROG" touch "$PAGES" "$CHUNK" > "$log" ;;
    kscope) "$KSCOPE" faults --no-plot -o "$tmp/rec.kscope" -- "$PROG" touch "$PAGES" "$CHUNK" > "$log" 2>&1 ;;
    kscope-stacks) "$KSCOPE" faults --stacks --no-plot -o "$tmp/rec.kscope" -- "$PROG" touch "$PAGES" "$CHUNK" > "$log" 2>&1 ;;
    perf-record) perf record -q -e minor-faults -c 1 -d -o "$tmp/perf.data" -- "$PROG" touch "$PAGES" "$CHUNK" > "$log" 2>&1 ;;
    perf-dwarf) perf record -q -e page-faults -c 1 --call-graph dwarf -o "$tmp/perf.data" -- "$PROG" touch "$PAGES" "$CHUNK" > "$log" 2>&1 ;;
    perf-fp) perf record -q -e page-faults -c 1 -g -o "$tmp/perf.data" -- "$PROG" touch "$PAGES" "$CHUNK" > "$log" 2>&1 ;;
    bpftrace-printf)
      bpftrace -c "$PROG touch $PAGES $CHUNK" -e 'tracepoint:exceptions:page_fault_user /pid == cpid/ { printf("%lx\n", args->address); }' > "$log" 2>&1 ;;
  esac
  local ns lost=""
  ns=$(grep -m1 -o 'elapsed_ns [0-9]*' "$log" | awk '{print $2}' || true)
  if [[ $cfg == kscope || $cfg == kscope-stacks ]]; then
    lost=$(grep -m1 -o 'lost records: [0-9,]*' "$log" | awk '{print $3}' | tr -d ,)
  fi
  echo "$ns $lost"
}

# Interleaved rounds of a group of configurations at NPAGES faults per run; a markdown table.
# measure TITLE NPAGES CONFIG...
measure() {
  local title=$1 npages=$2
  shift 2
  local group=("$@") cfg r ns lost m runs ratio base
  declare -A samples=() lostv=()
  echo "bench: $ROUNDS interleaved rounds of: ${group[*]} (workload: $npages page faults)" >&2
  for ((r = 1; r <= ROUNDS; r++)); do
    for cfg in "${group[@]}"; do
      read -r ns lost < <(run_one "$cfg" "$npages")
      [[ -n "$ns" ]] || { echo "bench: $cfg produced no measurement, see its output:" >&2; cat "$tmp/$cfg.log" >&2; exit 1; }
      samples[$cfg]+="$ns "
      if [[ -n "$lost" ]]; then lostv[$cfg]=$(( ${lostv[$cfg]:-0} + lost )); fi
    done
    echo "bench: round $r/$ROUNDS done" >&2
  done
  base=$(echo "${samples[untraced]}" | median)
  report=$OUT/$title-$(date +%Y%m%d-%H%M%S).md
  {
    echo "### Page-fault tracing overhead: $title ($(date -u +%Y-%m-%d), $ROUNDS interleaved rounds)"
    echo
    echo "Machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "Workload: \`faultprog touch $npages $CHUNK\` (anonymous mmaps of $CHUNK pages, write each 4 KiB page once, unmap; the program times its write loops)"
    echo
    echo "| set-up | median loop time | slowdown vs untraced | all runs (ms) | records lost |"
    echo "| --- | --- | --- | --- | --- |"
    for cfg in "${group[@]}"; do
      m=$(echo "${samples[$cfg]}" | median)
      runs=$(for x in ${samples[$cfg]}; do printf '%.0f ' "$(echo "$x / 1000000" | bc -l)"; done)
      ratio=$(echo "scale=3; $m / $base" | bc -l)
      printf '| %s | %.1f ms | %.2fx | %s| %s |\n' "$cfg" "$(echo "$m / 1000000" | bc -l)" "$ratio" "$runs" "${lostv[$cfg]:-n/a}"
    done
  } | tee "$report"
  echo "bench: written to $report" >&2
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
measure faults "$PAGES" "${configs[@]}"
faults_report=$report
# kscope faults --stacks (the native walker at every fault) against perf's call graphs.
measure fault-stacks "$STACK_PAGES" "${stack_configs[@]}"
report=$faults_report  # the report timing below goes with the faults table
[[ ${ONLY:-} == faults ]] && exit 0

# ---- kscope report on a 1,000,000-fault recording (docs/PERFORMANCE.md, "kscope report").
# Target: under 5 s and under 15 MB. The recording is synthetic (bench/synth_recording.cpp).
SYNTH=$BUILD/bench/synth_recording
REPORT_FAULTS=${REPORT_FAULTS:-1000000}
if [[ -x $SYNTH ]]; then
  "$SYNTH" "$tmp/synth.kscope" "$REPORT_FAULTS"
  times=()
  for ((r = 1; r <= 5; r++)); do
    s=$(date +%s%N)
    "$KSCOPE" report "$tmp/synth.kscope" -o "$tmp/synth.html"
    times+=($(( ($(date +%s%N) - s) / 1000000 )))
  done
  med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
  {
    echo
    echo "### kscope report ($(date -u +%Y-%m-%d), $REPORT_FAULTS faults, 5 runs)"
    echo
    echo "| recording | report time (median) | all runs (ms) | HTML size |"
    echo "| --- | --- | --- | --- |"
    echo "| $(stat -c %s "$tmp/synth.kscope") bytes | ${med} ms | ${times[*]} | $(stat -c %s "$tmp/synth.html") bytes |"
  } | tee -a "$report"
else
  echo "bench: $SYNTH not built; skipping the report timing" >&2
fi
# kscope monitor: sampling-period jitter and the monitor's own CPU (bench/monitor.sh, also
# runnable on its own).
bench/monitor.sh

# kscope top: context-switch overhead against offcputime, perf sched, bpftrace; screen CPU/RSS
# with 500 processes (bench/top.sh, also runnable on its own).
# Unpinned pipe with the screen round, the pinned pipe (the switches' own cost), a compile, and
# the sampler alone: four different measurements, not a repeat.
bench/top.sh
PIN=1 SKIP_SCREEN=1 bench/top.sh
WORKLOAD=compile SKIP_SCREEN=1 bench/top.sh
MODE=sampler bench/top.sh

# The native unwinder (docs/unwinding.md): cost of the switch program and of one walk from the
# kernel's BPF statistics, and the table memory with g++ compiles traced system-wide.
bench/unwind_cost.sh "${UNWIND_ROUNDS:-5}" 8
bench/unwind_table_memory.sh "${UNWIND_ROUNDS:-5}" 4
