#!/usr/bin/env bash
# A/B: two kscope binaries on the same workloads in the same interleaved rounds, so that a change
# can be judged on a machine whose absolute speed drifts (these VMs' untraced page-fault loop
# varied 7x between days). Each round runs untraced, A and B; the order of A and B alternates
# between rounds. Reported: medians, slowdown vs untraced, and the median of the per-round B/A
# ratios (paired, so slow and fast phases of the machine cancel).
#   bench/ab.sh OLD_KSCOPE NEW_KSCOPE
#   PART=faults|top|both (default both)  ROUNDS (default 11)  PAGES, CHUNK (faults workload)
#   LOOPS (top workload: pinned perf bench sched pipe round trips, default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 2 && -x $1 && -x $2 ]] || { echo "usage: bench/ab.sh OLD_KSCOPE NEW_KSCOPE (both executable)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "bench: needs root (BPF)" >&2; exit 1; }
A=$(realpath "$1")
B=$(realpath "$2")
BUILD=${BUILD_DIR:-build}
PROG=$PWD/$BUILD/progs/faultprog
[[ -x $PROG ]] || { echo "bench: $PROG is not built (make build)" >&2; exit 1; }
PART=${PART:-both}
ROUNDS=${ROUNDS:-11}
PAGES=${PAGES:-262144}
CHUNK=${CHUNK:-16384}
LOOPS=${LOOPS:-200000}
OUT=bench/results
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# faults: the workload's own loop time (ns), traced by `kscope faults -o`.
faults_one() {  # untraced | path-to-kscope
  local log=$tmp/f.log
  if [[ $1 == untraced ]]; then
    "$PROG" touch "$PAGES" "$CHUNK" > "$log"
  else
    "$1" faults --no-plot -o "$tmp/rec.kscope" -- "$PROG" touch "$PAGES" "$CHUNK" > "$log" 2>&1
  fi
  grep -m1 -o 'elapsed_ns [0-9]*' "$log" | awk '{print $2}'
}

# top: pinned pipe ping-pong's own Total time (s) while `kscope top --once` traces everything.
pipe_time() { taskset -c 1 perf bench sched pipe -l "$LOOPS" 2>&1 | awk '/Total time/ {print $3}'; }
top_one() {
  [[ $1 == untraced ]] && { pipe_time; return; }
  "$1" top --once --duration 600 > "$tmp/k.log" 2>&1 &
  local pid=$! t
  for _ in $(seq 300); do grep -q measuring "$tmp/k.log" 2>/dev/null && break; sleep 0.1; done
  grep -q measuring "$tmp/k.log" || { echo "bench: $1 top did not start:" >&2; cat "$tmp/k.log" >&2; kill "$pid"; exit 1; }
  t=$(pipe_time)
  kill -INT "$pid"; wait "$pid" || true
  echo "$t"
}

run_part() {  # name fn unit
  local name=$1 fn=$2 unit=$3
  local -a us as bs ratios
  echo "bench: $name: $ROUNDS interleaved rounds of untraced, A=$A, B=$B (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  for ((r = 1; r <= ROUNDS; r++)); do
    local u a b
    u=$($fn untraced)
    if ((r % 2)); then a=$($fn "$A"); b=$($fn "$B"); else b=$($fn "$B"); a=$($fn "$A"); fi
    [[ -n $u && -n $a && -n $b ]] || { echo "bench: round $r produced no time" >&2; exit 1; }
    us+=("$u"); as+=("$a"); bs+=("$b")
    ratios+=("$(echo "scale=4; $b / $a" | bc -l)")
    echo "bench: $name round $r/$ROUNDS: untraced $u, A $a, B $b" >&2
  done
  local mu ma mb mr
  mu=$(echo "${us[*]}" | median); ma=$(echo "${as[*]}" | median); mb=$(echo "${bs[*]}" | median)
  mr=$(echo "${ratios[*]}" | median)
  echo
  echo "#### $name ($(date -u '+%Y-%m-%d %H:%M') UTC, $ROUNDS interleaved rounds, load at end $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "| set-up | median ($unit) | slowdown vs untraced | all runs |"
  echo "| --- | --- | --- | --- |"
  printf '| untraced | %s | 1.00x | %s |\n' "$mu" "${us[*]}"
  printf '| A %s | %s | %.2fx | %s |\n' "$A" "$ma" "$(echo "scale=4; $ma / $mu" | bc -l)" "${as[*]}"
  printf '| B %s | %s | %.2fx | %s |\n' "$B" "$mb" "$(echo "scale=4; $mb / $mu" | bc -l)" "${bs[*]}"
  echo
  echo "Paired B/A per round: median $mr (all: ${ratios[*]})"
}

report=$OUT/ab-$(date +%Y%m%d-%H%M%S).md
{
  echo "### A/B: A = $A, B = $B"
  echo
  echo "Machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  [[ $PART == top ]] || run_part "faults: faultprog touch $PAGES $CHUNK" faults_one ns
  [[ $PART == faults ]] || run_part "top: taskset -c 1 perf bench sched pipe -l $LOOPS" top_one s
} | tee "$report"
echo "bench: written to $report" >&2
