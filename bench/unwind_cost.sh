#!/bin/bash
# Cost of kscope top's switch program with the native user-stack walk (--call-graph dwarf)
# against the frame-pointer walk (--call-graph fp), from the kernel's own BPF statistics
# (kernel.bpf_stats_enabled=1: run_time_ns and run_cnt of the program), interleaved rounds.
#
#   bench/unwind_cost.sh [ROUNDS] [SECONDS]      (root; default 3 rounds of 5 s)
#
# Traces the whole system (whatever runs: run a workload next to it), so both modes see the
# same population of tasks in each round. Prints one line per run and the median ns per run.
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
KSCOPE=${KSCOPE:-$(dirname "$0")/../build/kscope}

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
