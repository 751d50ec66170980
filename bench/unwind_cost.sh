#!/bin/bash
# Cost of kscope top's switch program with the native user-stack walk (--call-graph dwarf)
# against the frame-pointer walk (--call-graph fp), from the kernel's own BPF statistics
# (BPF_ENABLE_STATS: run_time_ns and run_cnt of the program), interleaved rounds.
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
#
# KSCOPE_BASELINE=OTHER_KSCOPE: an A/B of two binaries (say, a copy of main's build and this
# tree's) in the same rounds: each round measures the baseline's dwarf mode and walk right
# before this binary's, and the medians of both are printed.
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
KSCOPE=${KSCOPE:-$(dirname "$0")/../build/kscope}
BASELINE=${KSCOPE_BASELINE:-}
CHAIN=${CHAIN:-$(dirname "$0")/../build/progs/unwind_chain}

# The kernel's BPF run-time statistics, on for the whole run: held by a BPF_ENABLE_STATS
# descriptor (counted by the kernel), not the kernel.bpf_stats_enabled sysctl, which another
# script running at the same time may switch off when it ends.
python3 -c '
import ctypes, signal, sys
attr = (ctypes.c_uint8 * 16)()  # union bpf_attr: enable_stats.type = BPF_STATS_RUN_TIME (0)
fd = ctypes.CDLL(None, use_errno=True).syscall(321, 32, attr, 16)  # bpf(BPF_ENABLE_STATS)
if fd < 0:
    sys.exit("unwind_cost.sh: BPF_ENABLE_STATS failed (errno %d)" % ctypes.get_errno())
signal.pause()' &
stats_pid=$!
trap 'kill "$stats_pid" 2>/dev/null || true' EXIT
sleep 0.5
kill -0 "$stats_pid" || { echo "unwind_cost.sh: cannot enable the BPF statistics" >&2; exit 1; }

# Ids of the loaded top_sched_switch programs (other kscope instances may run at the same time).
prog_ids() {
	{ bpftool prog show name top_sched_switch 2>/dev/null || true; } |
		sed -n 's/^\([0-9]*\): .*/\1/p' | sort
}

# run_time_ns and run_cnt of program ID.
prog_stats() { # ID
	{ bpftool prog show id "$1" 2>/dev/null || true; } |
		sed -n 's/.*run_time_ns \([0-9]*\) run_cnt \([0-9]*\).*/\1 \2/p' | head -1
}

measure() { # MODE [BINARY] -> "ns_per_run runs"
	local before id="" a="" b=""
	before=$(prog_ids)
	"${2:-$KSCOPE}" top --once --duration "$SECONDS_PER_RUN" --call-graph "$1" --format json \
		>/dev/null 2>&1 &
	local pid=$!
	# Ours: the program that was not loaded before this run started (sorted as comm wants).
	for _ in $(seq 900); do
		id=$(comm -13 <(echo "$before") <(prog_ids) | head -1 || true)
		[ -n "$id" ] && a=$(prog_stats "$id")
		[ -n "$a" ] && break
		sleep 0.1
	done
	sleep 1 # tables of the running processes are loaded by now
	[ -n "$id" ] && a=$(prog_stats "$id")
	sleep $((SECONDS_PER_RUN - 2))
	[ -n "$id" ] && b=$(prog_stats "$id")
	wait "$pid" || true
	set -- $a $b
	[ $# -eq 4 ] || { echo "0 0"; return; }
	local runs=$(($4 - $2))
	[ "$runs" -gt 0 ] || { echo "0 0"; return; }
	echo "$((($3 - $1) / runs)) $runs"
}

declare -A results
modes="dwarf fp"
[ -n "$BASELINE" ] && modes="baseline-dwarf dwarf fp"
for round in $(seq "$ROUNDS"); do
	for mode in $modes; do
		if [ "$mode" = baseline-dwarf ]; then
			read -r ns runs < <(measure dwarf "$BASELINE")
		else
			read -r ns runs < <(measure "$mode")
		fi
		echo "round $round $mode: $ns ns per run over $runs runs"
		results[$mode]+="$ns "
	done
done
for mode in $modes; do
	median=$(tr ' ' '\n' <<<"${results[$mode]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "median $mode: $median ns per run of top_sched_switch"
done

# One walk: median and p90 per round, from the walk-time histogram.
walk_cost() { # [BINARY] -> "median p90 walks"
	local out pid
	out=$(mktemp)
	"$CHAIN" sleep $((SECONDS_PER_RUN + 30)) >/dev/null &
	pid=$!
	sleep 0.2
	KSCOPE_UNWIND_TIMING=1 "${1:-$KSCOPE}" top -p "$pid" --once --duration "$SECONDS_PER_RUN" \
		--format json >"$out" 2>/dev/null || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	python3 -c 'import json,sys
w = json.load(open(sys.argv[1])).get("unwind", {}).get("walk_ns", {})
print(w.get("median", 0), w.get("p90", 0), w.get("timed_walks", 0))' "$out" || echo "0 0 0"
	rm -f "$out"
}

medians="" p90s="" base_medians="" base_p90s=""
for round in $(seq "$ROUNDS"); do
	if [ -n "$BASELINE" ]; then
		read -r med p90 walks < <(walk_cost "$BASELINE")
		echo "round $round baseline walk: median $med ns, p90 $p90 ns over $walks walks (17-frame stack)"
		base_medians+="$med " base_p90s+="$p90 "
	fi
	read -r med p90 walks < <(walk_cost)
	echo "round $round walk: median $med ns, p90 $p90 ns over $walks walks (17-frame stack)"
	medians+="$med " p90s+="$p90 "
done
mid() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
[ -n "$BASELINE" ] &&
	echo "baseline walk median of medians: $(mid "$base_medians") ns; median p90: $(mid "$base_p90s") ns"
echo "walk median of medians: $(mid "$medians") ns; median p90: $(mid "$p90s") ns"

# Where a walk's time goes, per part (bench/unwind_parts: the walker run with BPF_PROG_TEST_RUN
# on a known stack of its own; docs/PERFORMANCE.md).
PARTS=${PARTS:-$(dirname "$0")/../build/bench/unwind_parts}
if [ -x "$PARTS" ]; then
	"$PARTS" --rounds 31 --single 2000
fi
