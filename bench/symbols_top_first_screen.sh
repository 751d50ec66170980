#!/usr/bin/env bash
# Time to first screen of `kscope top` on a busy machine (docs/symbols.md): NPROC processes
# (default 300) that wake up every 10 ms (so each has stacks to symbolize: sh, sleep, libc),
# then `kscope top --once --duration 1 --format json` RUNS times (default 5). The time to first
# screen is the wall time minus the 1 s of sampling: startup, attaching, and symbolizing every
# stack shown. Prints each run (with kscope -v's account of its own time) and the median.
#   NPROC=300 RUNS=5 bench/symbols_top_first_screen.sh [KSCOPE]
set -euo pipefail
kscope=${1:-$(dirname "$0")/../build/kscope}
nproc=${NPROC:-300}
runs=${RUNS:-5}
if [[ $(id -u) -ne 0 ]]; then echo "bench: needs root" >&2; exit 1; fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq "$nproc"); do
  sh -c 'while :; do sleep 0.01; done' &
  pids+=($!)
done
sleep 2
echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $nproc busy processes, $(nproc) CPUs"
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
  printf 'run %d: %.3f s after the 1 s of sampling (%d task rows)\n' "$r" "$t" "$tasks"
  # Where the time went (kscope -v): start-up steps, the first table, per-process work.
  grep -o 'own time: .*' /tmp/kscope-top-first.$$.err | sed 's/^/  /' || true
  times+=("$t")
done
rm -f /tmp/kscope-top-first.$$ /tmp/kscope-top-first.$$.err
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median: %.3f s\n", a[int((NR+1)/2)]}'
