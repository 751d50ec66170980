#!/usr/bin/env bash
# Time to first screen of `kscope top` on a busy machine (docs/symbols.md): NPROC processes
# (default 300, tests/progs/sleepers) that each spin SPIN_US (default 300) of their own CPU
# time in a function of their own, then sleep PERIOD_MS (default 50), so together they need
# NPROC * SPIN_US / (PERIOD_MS * 1000 + SPIN_US) CPUs (1.8 by default: 90% of this 2-CPU VM)
# and each has stacks to walk and symbolize. Not a fork storm: an earlier version ran 300
# `while :; do sleep 0.01; done` shell loops, whose forks drove the load average to 190-330 and
# starved everything, kscope included. Then `kscope top --once --duration 1 --format json`
# RUNS times (default 5). The time to first screen is the wall time minus the 1 s of sampling:
# startup, attaching, and symbolizing every stack shown. Prints each run (with kscope -v's
# account of its own time), the CPU busy share and load meanwhile, and the median.
#   NPROC=300 SPIN_US=300 PERIOD_MS=50 RUNS=5 bench/symbols_top_first_screen.sh [KSCOPE]
set -euo pipefail
kscope=${1:-$(dirname "$0")/../build/kscope}
nproc=${NPROC:-300}
runs=${RUNS:-5}
spin_us=${SPIN_US:-300}
period_ms=${PERIOD_MS:-50}
sleepers=${SLEEPERS:-$(dirname "$0")/../build/progs/sleepers}
if [[ $(id -u) -ne 0 ]]; then echo "bench: needs root" >&2; exit 1; fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
# Killing the parent is enough: the children are in its process group, killed with it.
setsid "$sleepers" "$nproc" "$period_ms" 3600 "$spin_us" &
pids+=($!)
sleep 3
busy() {  # share of all CPUs busy over 1 s, from /proc/stat
  read -r _ u n s i w q sq st _ < /proc/stat
  local b0=$((u + n + s + q + sq + st)) t0=$((u + n + s + i + w + q + sq + st))
  sleep 1
  read -r _ u n s i w q sq st _ < /proc/stat
  local b1=$((u + n + s + q + sq + st)) t1=$((u + n + s + i + w + q + sq + st))
  echo "$(( (b1 - b0) * 100 / (t1 - t0) ))%"
}
echo "workload: $nproc processes, each spinning ${spin_us} us then sleeping ${period_ms} ms; CPUs busy $(busy), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
times=()
for r in $(seq "$runs"); do
  start=$(date +%s.%N)
  if ! "$kscope" -v top --once --duration 1 --format json -n 50 > /tmp/kscope-top-first.$$ \
    2> /tmp/kscope-top-first.$$.err; then
    echo "bench: kscope top failed:" >&2
    cat /tmp/kscope-top-first.$$.err >&2
    exit 1
  fi
  end=$(date +%s.%N)
  t=$(echo "$end - $start - 1" | bc -l)
  tasks=$(head -c 2000000 /tmp/kscope-top-first.$$ | grep -o '"tid"' | wc -l)
  printf 'run %d: %.3f s after the 1 s of sampling (%d task rows; load %s)\n' "$r" "$t" "$tasks" \
    "$(cut -d' ' -f1 /proc/loadavg)"
  # Where the time went (kscope -v): start-up steps, the first table, per-process work.
  grep -o 'own time: .*' /tmp/kscope-top-first.$$.err | sed 's/^/  /' || true
  times+=("$t")
done
rm -f /tmp/kscope-top-first.$$ /tmp/kscope-top-first.$$.err
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median: %.3f s\n", a[int((NR+1)/2)]}'
