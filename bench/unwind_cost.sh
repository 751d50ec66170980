#!/bin/bash
# Cost of kscope top's switch program with the native user-stack walk (--call-graph dwarf)
# against the frame-pointer walk (--call-graph fp), from the kernel's own BPF statistics
# (kernel.bpf_stats_enabled=1: run_time_ns and run_cnt of the program), interleaved rounds.
#
#   bench/unwind_cost.sh [ROUNDS] [SECONDS]      (root; default 3 rounds of 5 s)
#
# Traces the whole system (whatever runs: run a workload next to it), so both modes see the
# same population of tasks in each round. Prints one line per run and the median ns per run.
#
# Then the cost of one walk itself: tests/progs/unwind_chain (-O2 -fomit-frame-pointer) sleeps
# 2 ms at a time (~500 switch-outs a second) under a known 17-frame user stack (libc's
# clock_nanosleep and nanosleep, leaf_sleep, leaf, chain_10 .. chain_1, main, libc's start,
# _start) and `kscope top -p` times every walk of it in BPF (KSCOPE_UNWIND_TIMING=1:
# bpf_ktime_get_ns around kscope_unwind_user, a 25 ns histogram; the two clock reads, ~20-40 ns,
# are included). Prints each round's median and p90 and their medians over the rounds.
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
KSCOPE=${KSCOPE:-$(dirname "$0")/../build/kscope}
CHAIN=${CHAIN:-$(dirname "$0")/../build/progs/unwind_chain}

old_stats=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled="$old_stats"' EXIT
sysctl -qw kernel.bpf_stats_enabled=1

# run_time_ns and run_cnt of the loaded top_sched_switch program .
prog_stats() {
	bpftool prog show name top_sched_switch 2>/dev/null |
		sed -n 's/.*run_time_ns \([0-9]*\) run_cnt \([0-9]*\).*/\1 \2/p' | head -1 || true
}

measure() { # MODE -> "ns_per_run runs"
	"$KSCOPE" top --once --duration "$SECONDS_PER_RUN" --call-graph "$1" --format json \
		>/dev/null 2>&1 &
	local pid=$!
	local a="" b=""
	for _ in $(seq 900); do
		a=$(prog_stats)
		[ -n "$a" ] && break
		sleep 0.1
	done
	sleep 1 # tables of the running processes are loaded by now
	a=$(prog_stats)
	sleep $((SECONDS_PER_RUN - 2))
	b=$(prog_stats)
	wait "$pid" || true
	set -- $a $b
	local runs=$(($4 - $2))
	[ "$runs" -gt 0 ] || { echo "0 0"; return; }
	echo "$((($3 - $1) / runs)) $runs"
}

declare -A results
for round in $(seq "$ROUNDS"); do
	for mode in dwarf fp; do
		read -r ns runs < <(measure "$mode")
		echo "round $round $mode: $ns ns per run over $runs runs"
		results[$mode]+="$ns "
	done
done
for mode in dwarf fp; do
	median=$(tr ' ' '\n' <<<"${results[$mode]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "median $mode: $median ns per run of top_sched_switch"
done

# One walk: median and p90 per round, from the walk-time histogram.
walk_cost() { # -> "median p90 walks"
	local out pid
	out=$(mktemp)
	"$CHAIN" sleep $((SECONDS_PER_RUN + 30)) >/dev/null &
	pid=$!
	sleep 0.2
	KSCOPE_UNWIND_TIMING=1 "$KSCOPE" top -p "$pid" --once --duration "$SECONDS_PER_RUN" \
		--format json >"$out" 2>/dev/null || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	python3 -c 'import json,sys
w = json.load(open(sys.argv[1])).get("unwind", {}).get("walk_ns", {})
print(w.get("median", 0), w.get("p90", 0), w.get("timed_walks", 0))' "$out" || echo "0 0 0"
	rm -f "$out"
}

medians="" p90s=""
for round in $(seq "$ROUNDS"); do
	read -r med p90 walks < <(walk_cost)
	echo "round $round walk: median $med ns, p90 $p90 ns over $walks walks (17-frame stack)"
	medians+="$med " p90s+="$p90 "
done
mid() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "walk median of medians: $(mid "$medians") ns; median p90: $(mid "$p90s") ns"
