#!/usr/bin/env bash
# make bench, kscope top part: (1) overhead on a context-switch-heavy workload (perf bench sched
# pipe) untraced, under kscope top, BCC's offcputime, perf sched record and a bpftrace
# kstack+ustack count, interleaved rounds, medians, ratios; (2) kscope top's own CPU use and RSS
# while its live screen refreshes every second with 500 processes waking up.
# WORKLOAD=compile (with SKIP_SCREEN=1): the same set-ups on a compile instead of the pipe.
# (3) MODE=sampler: only the cost of the on-CPU sampler (cpu-clock, -F), on an idle machine (CPU
# busy from /proc/stat) and on a busy one (fixed CPU-bound work on every CPU), -F 1 vs 999 vs max;
# the work's binaries are mapped by a process started before kscope, and SETTLE seconds pass
# after kscope says "measuring", so the windows hold no start-up work.
#   ROUNDS (default 5)  LOOPS (default 200000 pipe round trips)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
KSCOPE=$PWD/$BUILD/kscope
ROUNDS=${ROUNDS:-5}
LOOPS=${LOOPS:-200000}
OUT=bench/results
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; tmux -L kscope-bench kill-server 2>/dev/null || true' EXIT
have() { command -v "$1" >/dev/null 2>&1; }
if [[ $(id -u) -ne 0 ]]; then echo "bench: needs root" >&2; exit 1; fi
have perf || { echo "bench: perf (linux-perf) is required for the workload" >&2; exit 1; }
[[ -d /sys/kernel/tracing/events ]] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true

configs=(untraced kscope-top kscope-top-no-stacks)
have offcputime && have bpftool && configs+=(offcputime)
configs+=(perf-sched-record perf-record-g kscope-top-F1)
have bpftrace && configs+=(bpftrace-stacks)

# PIN=1: both pipe processes on one CPU, so the time is the cost of the switches themselves, not
# of cross-CPU wake-ups out of idle (which dominate on this VM and which tracing can even hide).
PIN=${PIN:-0}
pin=()
[[ $PIN == 1 ]] && pin=(taskset -c 1)
# WORKLOAD=compile: instead of the pipe, a compile: two of kscope's own C++ translation units
# (COMPILE_TUS, default src/export/pprof.cpp and src/export/chrome_trace.cpp: fmt, nlohmann-json,
# the standard library) compiled at once with the build's own flags and without ccache, as
# `make -j2` would; its time is the wall time of both. It prints perf bench's "Total time" line, so every set-up below times it the same way.
WORKLOAD=${WORKLOAD:-pipe}
if [[ $WORKLOAD == compile ]]; then
  [[ -f $BUILD/compile_commands.json ]] || { echo "bench: $BUILD/compile_commands.json missing: make build first" >&2; exit 1; }
  COMPILE_TUS=${COMPILE_TUS:-src/export/pprof.cpp src/export/chrome_trace.cpp}
  python3 - "$BUILD/compile_commands.json" "$tmp" $COMPILE_TUS > "$tmp/compile.sh" <<'PY'
import json, shlex, sys
cmds = {e["file"]: e for e in json.load(open(sys.argv[1]))}
print("set -e")
print("s0=$(date +%s.%N)")
for i, tu in enumerate(sys.argv[3:]):
    e = next(v for k, v in cmds.items() if k.endswith(tu))
    argv = [a for a in shlex.split(e["command"]) if not a.endswith("ccache")]
    if "-o" in argv:
        argv[argv.index("-o") + 1] = f"{sys.argv[2]}/tu{i}.o"
    print(f"(cd {shlex.quote(e['directory'])} && {shlex.join(argv)}) &")
print("wait")
print('echo "Total time: $(echo "$(date +%s.%N) - $s0" | bc -l) [sec]"')
PY
  workload_cmd=(bash "$tmp/compile.sh")
  workload_desc="g++ -O2 of $COMPILE_TUS at once (no ccache); wall time"
else
  workload_cmd=("${pin[@]}" perf bench sched pipe -l "$LOOPS")
  workload_desc="\`${pin[*]} perf bench sched pipe -l $LOOPS\` (two processes ping-ponging over pipes: $((LOOPS * 2)) context switches at least); its own Total time"
fi
workload() { "${workload_cmd[@]}" 2>&1 | awk '/Total time/ {print $3}'; }

# Starts a tracer in the background, waits until it is attached (its output says so).
start_bg() {  # log needle cmd...
  local log=$1 needle=$2
  shift 2
  "$@" > "$log" 2>&1 &
  bg_pid=$!
  for _ in $(seq 100); do grep -q "$needle" "$log" 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: '$*' did not start:" >&2; cat "$log" >&2; return 1
}
# offcputime prints nothing until it exits: it is attached once its tp_btf program (named
# sched_switch; kscope's is top_sched_switch) is loaded.
start_offcputime() {
  offcputime 600 > "$tmp/o.log" 2>&1 &
  bg_pid=$!
  for _ in $(seq 100); do
    bpftool prog show name sched_switch 2>/dev/null | grep -q tracing && { sleep 0.2; return 0; }
    sleep 0.1
  done
  echo "bench: offcputime did not attach:" >&2; cat "$tmp/o.log" >&2; return 1
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
stop_bg() { kill -INT "$bg_pid" 2>/dev/null || true; wait "$bg_pid" 2>/dev/null || true; }

run_one() {
  local cfg=$1 t
  case $cfg in
    untraced) t=$(workload) ;;
    kscope-top)
      start_bg "$tmp/k.log" measuring "$KSCOPE" top --once --duration 600
      t=$(workload); stop_bg
      grep -q "RANK" "$tmp/k.log" || { echo "bench: kscope top printed no table" >&2; cat "$tmp/k.log" >&2; exit 1; } ;;
    kscope-top-F1)  # the sampler almost off: kscope-top minus this = the sampler's share
      start_bg "$tmp/k.log" measuring "$KSCOPE" top --once --duration 600 -F 1
      t=$(workload); stop_bg ;;
    perf-record-g)
      t=$(perf record -q -F 999 -g -a -o "$tmp/perf.data" -- "${workload_cmd[@]}" 2>&1 | awk '/Total time/ {print $3}') ;;
    kscope-top-no-stacks)
      start_bg "$tmp/k.log" measuring "$KSCOPE" top --once --duration 600 --no-stacks
      t=$(workload); stop_bg ;;
    offcputime)
      start_offcputime
      t=$(workload); stop_bg ;;
    perf-sched-record)
      t=$(perf sched record -q -o "$tmp/sched.data" -- "${workload_cmd[@]}" 2>&1 | awk '/Total time/ {print $3}') ;;
    bpftrace-stacks)
      start_bg "$tmp/b.log" "Attaching" bpftrace -e 'tracepoint:sched:sched_switch { @[kstack, ustack] = count(); }'
      t=$(workload); stop_bg ;;
  esac
  echo "$t"
}

# ---- MODE=sampler: what the cpu-clock sampler costs, idle and busy.
if [[ ${MODE:-} == sampler ]]; then
  IDLE_SECS=${IDLE_SECS:-10}
  # Per CPU, the busy work's awk iterations: 1e8 take about 2.5 s here (2e7, the old fixed
  # count, took 0.4-0.7 s, too short against the machine's noise).
  BUSY_ITERS=${BUSY_ITERS:-1e8}
  busy_work() {  # fixed CPU-bound work on every CPU; prints the wall time
    local s0 s1
    s0=$(date +%s.%N)
    for _ in $(seq "$(nproc)"); do awk -v n="$BUSY_ITERS" 'BEGIN { for (i = 0; i < n; i++) s += i }' & done
    wait
    s1=$(date +%s.%N)
    echo "$s1 - $s0" | bc -l
  }
  busy_pct() {  # CPU busy (all CPUs, %) over IDLE_SECS
    local a b
    a=($(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat))
    sleep "$IDLE_SECS"
    b=($(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat))
    echo "scale=3; 100 * (${b[0]} - ${a[0]}) / (${b[1]} - ${a[1]})" | bc -l
  }
  # The busy work's awk processes are new to kscope, which loads the unwind tables of their
  # files (awk, libc, libm, ld.so) as they start: per-process work, not the sampler's. An awk
  # that lives through every round (it reads a pipe that never writes) has those files mapped
  # when kscope starts, so their tables are loaded at start-up, before the window; then SETTLE
  # seconds (default 3) let start-up end before anything is measured.
  SETTLE=${SETTLE:-3}
  mkfifo "$tmp/keep"
  awk '{ print }' < "$tmp/keep" > /dev/null &
  keeper=$!
  exec 9> "$tmp/keep"  # the write end stays open in this shell: the awk waits for input
  trap 'kill "$keeper" 2>/dev/null; rm -rf "$tmp"' EXIT
  declare -A idle busy
  scfgs=(untraced F1 F999 Fmax)
  for ((r = 1; r <= ROUNDS; r++)); do
    for cfg in "${scfgs[@]}"; do
      if [[ $cfg != untraced ]]; then
        start_bg "$tmp/k.log" measuring "$KSCOPE" top --once --duration 600 -F "${cfg#F}"
      fi
      sleep "$SETTLE"
      idle[$cfg]+="$(busy_pct) "
      busy[$cfg]+="$(busy_work) "
      [[ $cfg != untraced ]] && stop_bg
    done
    echo "bench: sampler round $r/$ROUNDS done" >&2
  done
  report=$OUT/top-sampler-$(date +%Y%m%d-%H%M%S).md
  {
    echo "### kscope top sampler cost ($(date -u +%Y-%m-%d), $ROUNDS interleaved rounds, -F max = $(cat /proc/sys/kernel/perf_event_max_sample_rate) Hz now)"
    echo
    echo "| set-up | idle: CPU busy over ${IDLE_SECS} s (median %) | busy: fixed awk work on $(nproc) CPUs (median s) | idle runs | busy runs |"
    echo "| --- | --- | --- | --- | --- |"
    for cfg in "${scfgs[@]}"; do
      printf '| %s | %s | %s | %s| %s|\n' "$cfg" "$(echo "${idle[$cfg]}" | median)" "$(echo "${busy[$cfg]}" | median)" "${idle[$cfg]}" "${busy[$cfg]}"
    done
  } | tee "$report"
  echo "bench: written to $report" >&2
  exit 0
fi

declare -A samples
# SCREEN_ONLY=1: only the live screen's own cost with 500 processes (below), no rounds.
[[ ${SCREEN_ONLY:-0} == 1 ]] && ROUNDS=0
(( ROUNDS > 0 )) && echo "bench: $ROUNDS interleaved rounds of: ${configs[*]} ($workload_desc)" >&2
for ((r = 1; r <= ROUNDS; r++)); do
  for cfg in "${configs[@]}"; do
    t=$(run_one "$cfg")
    [[ -n "$t" ]] || { echo "bench: $cfg produced no time" >&2; exit 1; }
    samples[$cfg]+="$t "
  done
  echo "bench: round $r/$ROUNDS done" >&2
done
base=$( ((ROUNDS > 0)) && echo "${samples[untraced]}" | median || echo 1)
# The rounds' table: each set-up's median, its ratio to untraced, every run.
overhead_table() {
  echo "Workload: $workload_desc"
  echo
  echo "| set-up | median time | slowdown vs untraced | all runs (s) |"
  echo "| --- | --- | --- | --- |"
  for cfg in "${configs[@]}"; do
    m=$(echo "${samples[$cfg]}" | median)
    printf '| %s | %.3f s | %.2fx | %s|\n' "$cfg" "$m" "$(echo "scale=3; $m / $base" | bc -l)" "${samples[$cfg]}"
  done
}

if [[ ${SKIP_SCREEN:-0} == 1 ]]; then
  {
    echo "### kscope top overhead, $WORKLOAD workload ($(date -u +%Y-%m-%d), $ROUNDS interleaved rounds, load before: $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    overhead_table
  } | tee "$OUT/top-$WORKLOAD$([[ $PIN == 1 ]] && echo -pinned)-$(date +%Y%m%d-%H%M%S).md"
  exit 0
fi
# ---- kscope top's own cost with 500 processes waking up every 100 ms, live screen at 1 s.
SLEEPERS=${SLEEPERS:-500}
SECS=${SECS:-30}
"$BUILD/progs/sleepers" "$SLEEPERS" 100 $((SECS + 10)) &
sl=$!
sleep 2
tmux -L kscope-bench new-session -d -x 160 -y 50 "$KSCOPE top -d 1"
# Steady state: start-up (BPF verification, 2-4 s of CPU here, and the first unwind tables) is
# not the screen's cost, so the window starts WARMUP seconds in (it started 3 s in until
# 2026-11-30, which put most of start-up into a 30 s window: 5-7% of a core).
sleep "${WARMUP:-15}"
kpid=$(pgrep -n -f "$KSCOPE top -d 1")
ticks() { awk '{print $14 + $15}' "/proc/$kpid/stat"; }
t0=$(ticks); s0=$(date +%s.%N)
sleep "$SECS"
t1=$(ticks); s1=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$kpid/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$kpid/status")
tmux -L kscope-bench send-keys q
sleep 1
kill "$sl" 2>/dev/null || true; pkill -P "$sl" 2>/dev/null || true; wait "$sl" 2>/dev/null || true
hz=$(getconf CLK_TCK)
cpu_pct=$(echo "scale=2; 100 * ($t1 - $t0) / $hz / ($s1 - $s0)" | bc -l)

report=$OUT/top-$(date +%Y%m%d-%H%M%S).md
{
  echo "### kscope top overhead ($(date -u +%Y-%m-%d), $ROUNDS interleaved rounds)"
  echo
  echo "Machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  ((ROUNDS > 0)) && overhead_table
  echo
  echo "kscope top live screen (\`kscope top -d 1\` in a 160x50 tmux), $SLEEPERS processes each waking every 100 ms, ${SECS} s: kscope's own CPU ${cpu_pct}% of one core, RSS ${rss} kB (peak ${hwm} kB)."
} | tee "$report"
echo "bench: written to $report" >&2
