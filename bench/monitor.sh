#!/usr/bin/env bash
# kscope monitor: how well the sampling loop holds its period, and what the monitor itself costs,
# at 20 Hz with 30 registered processes. Two settings, interleaved, ROUNDS rounds each:
#   idle  30 sleeping processes (the machine otherwise quiet)
#   busy  30 kscope-work processes doing random accesses: 2 CPUs saturated 15x over, the
#         monitor competes with them for the CPU (the situation of the thrashing study)
# The monitor reports its own wake-up lateness (p50/p99/max after each absolute deadline),
# missed periods and CPU use at exit; this script collects them and prints medians.
#   ROUNDS (default 5)  SECONDS_PER_RUN (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
KSCOPE=$BUILD/kscope
WORK=$BUILD/kscope-work
ROUNDS=${ROUNDS:-5}
SECS=${SECONDS_PER_RUN:-10}
OUT=bench/results
mkdir -p "$OUT"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

run_one() {  # $1 = idle|busy; prints "p50 p99 max cpu_pct missed periods"
  local mode=$1
  pids=()
  for i in $(seq 30); do
    if [[ $mode == idle ]]; then sleep 1000 & else
      "$WORK" --mb 16 --pattern random --accesses 1000000000 --iterations 1 --seed "$i" >/dev/null & fi
    pids+=($!)
  done
  local list
  list=$(IFS=,; echo "${pids[*]}")
  "$KSCOPE" monitor --no-shm -q --socket "$tmp/m.sock" --period-ms 50 --duration "$SECS" -p "$list" \
    2> "$tmp/err" > /dev/null || { cat "$tmp/err" >&2; exit 1; }
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  sed -nE 's/.* ([0-9]+) periods sampled, ([0-9]+) missed.*p50=([0-9.]+)ms p99=([0-9.]+)ms max=([0-9.]+)ms.*\(([0-9.]+)% of a core\).*/\3 \4 \5 \6 \2 \1/p' "$tmp/err"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

declare -A col
echo "bench monitor: $ROUNDS interleaved rounds of idle and busy, ${SECS}s each, 30 processes at 20 Hz" >&2
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in idle busy; do
    read -r p50 p99 max cpu missed periods < <(run_one $mode)
    [[ -n "${p99:-}" ]] || { echo "bench monitor: no statistics from the monitor" >&2; exit 1; }
    col[$mode.p50]+="$p50 "; col[$mode.p99]+="$p99 "; col[$mode.max]+="$max "
    col[$mode.cpu]+="$cpu "; col[$mode.missed]+="$missed "; col[$mode.periods]+="$periods "
  done
  echo "bench monitor: round $r/$ROUNDS done" >&2
done
report=$OUT/monitor-$(date +%Y%m%d-%H%M%S).md
{
  echo "### kscope monitor: period jitter and own CPU ($(date -u +%Y-%m-%d), $ROUNDS interleaved rounds of ${SECS} s)"
  echo
  echo "Machine: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "Setting: 30 registered processes, period 50 ms (20 Hz), CSV off, ring off."
  echo
  echo "| setting | wake-up lateness p50 | p99 | max | monitor CPU (% of one core) | missed periods | all p99 runs (ms) | all CPU runs (%) |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  for mode in idle busy; do
    printf '| %s | %s ms | %s ms | %s ms | %s %% | %s of %s | %s| %s|\n' "$mode" \
      "$(echo "${col[$mode.p50]}" | tr ' ' '\n' | grep -v '^$' | median)" \
      "$(echo "${col[$mode.p99]}" | tr ' ' '\n' | grep -v '^$' | median)" \
      "$(echo "${col[$mode.max]}" | tr ' ' '\n' | grep -v '^$' | median)" \
      "$(echo "${col[$mode.cpu]}" | tr ' ' '\n' | grep -v '^$' | median)" \
      "$(echo "${col[$mode.missed]}" | tr ' ' '\n' | grep -v '^$' | median)" \
      "$(echo "${col[$mode.periods]}" | tr ' ' '\n' | grep -v '^$' | median)" \
      "${col[$mode.p99]}" "${col[$mode.cpu]}"
  done
} | tee "$report"
echo "bench monitor: written to $report" >&2
