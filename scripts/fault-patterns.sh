#!/usr/bin/env bash
# make fault-patterns: trace real programs with kscope faults and regenerate the figures of
# docs/fault-patterns.md (SVG via `kscope report --svg`, plus each run's terminal summary).
# Needs root (BPF) and the packages of `scripts/deps.sh fault-patterns`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
KSCOPE=$BUILD/kscope
OUT=docs/fault-patterns
if [[ $(id -u) -ne 0 ]]; then echo "fault-patterns: needs root (BPF)" >&2; exit 1; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [[ -n "${server:-}" ]] && kill "$server" 2>/dev/null || true' EXIT

# trace NAME COMMAND...: record, summarize, write the figures into $OUT/NAME/.
trace() {
  local name=$1; shift
  echo "fault-patterns: $name: $*" >&2
  rm -rf "${OUT:?}/$name"; mkdir -p "$OUT/$name"
  # With a COMMAND the summary is on stderr (stdout is the command's): keep only the summary.
  "$KSCOPE" faults --no-plot --top 15 -o "$tmp/$name.kscope" -- "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" || {
    cat "$tmp/$name.err" >&2; return 1; }
  sed -n '/^kscope faults:/,$p' "$tmp/$name.err" > "$OUT/$name/summary.txt"
  "$KSCOPE" report "$tmp/$name.kscope" -o "$tmp/$name.html" --svg "$OUT/$name" --title "kscope report: $name"
}

# 1. A C++ compile (compute and I/O): one translation unit of kscope itself, through the g++
#    driver (cc1plus, as) - kscope follows the children.
trace cxx-compile g++ -std=c++20 -O2 -Isrc -I"$BUILD/generated" -Iinclude -c src/model/recording.cpp -o "$tmp/recording.o"
# 2. sysbench memory (1 MiB blocks, 4 GiB written) and cpu (primes, 2 s).
trace sysbench-memory sysbench memory --threads=1 --memory-block-size=1M --memory-total-size=4G run
trace sysbench-cpu sysbench cpu --threads=1 --time=2 run
# 3. iperf3 over loopback: the client sends for 3 s to a local server.
iperf3 -s -1 -p 5299 > "$tmp/iperf3-server.log" 2>&1 &
server=$!
sleep 0.5
trace iperf3-client iperf3 -c 127.0.0.1 -p 5299 -t 3
wait "$server" 2>/dev/null || true
server=
echo "fault-patterns: figures written to $OUT/" >&2
