#!/bin/sh
# The share of whole user stacks of processes kscope learns about only while they run
# (docs/unwinding.md, "Early mappings"), for one kscope binary:
#   1. kscope faults --stacks -- COMMAND for commands that fault from their first instruction
#      (tests/progs/fault_stacks chain 64 go, python3 -c pass, gzip): complete user stacks of
#      all faults, from the summary;
#   2. kscope top --call-graph dwarf over N short processes (tests/progs/churnprog procs N 2,
#      each an exec of "churnprog child" that sleeps 1 ms under churn_child_work): per process,
#      whether its switch-out stacks under churn_child_work are whole or end with a marker.
# Usage: bench/unwind_early.sh KSCOPE PROGS_DIR [N]   (as root; N default 2000)
set -eu
KSCOPE=$1
PROGS=$2
N=${3:-2000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for cmd in "$PROGS/fault_stacks chain 64 go" "/usr/bin/python3 -c pass" \
	"/usr/bin/gzip -c /etc/services"; do
	# shellcheck disable=SC2086
	"$KSCOPE" faults --stacks --no-plot -- $cmd 2>"$out/f.err" >/dev/null
	printf '%s: ' "$cmd"
	grep -A1 "complete user stacks" "$out/f.err" | sed 's/^ *//' | tr '\n' ' '
	echo
done
"$PROGS/churnprog" procs "$N" 2 >"$out/prog.out" 2>&1 &
prog=$!
until grep -q ready "$out/prog.out"; do sleep 0.05; done
"$KSCOPE" top --once --duration 900 --comm churnprog --by stack --format json -n 1000000 \
	--call-graph dwarf >"$out/top.json" 2>"$out/top.err" &
top=$!
until grep -q measuring "$out/top.err"; do sleep 0.1; done
kill -USR1 "$prog"
until grep -q "^end" "$out/prog.out"; do sleep 0.2; done
sleep 2
kill -INT "$top"
wait "$top" || true
wait "$prog" || true
python3 - "$out/top.json" "$N" "$prog" <<'PY'
import json, sys, collections
j = json.load(open(sys.argv[1]))
parent = int(sys.argv[3])
pids, whole, why = set(), set(), collections.Counter()
for t in j["tasks"]:
    if t["pid"] == parent:
        continue
    pids.add(t["pid"])
    names = [f["symbol"] for f in t.get("user_stack", [])]
    if "churn_child_work" in names and not any(n.startswith("[incomplete") for n in names):
        whole.add(t["pid"])
for t in j["tasks"]:
    if t["pid"] in pids - whole:
        names = [f["symbol"] for f in t.get("user_stack", [])]
        why[next((n for n in names if n.startswith("[incomplete")), "other")] += 1
print(f"kscope top, {sys.argv[2]} churn processes: {len(pids)} seen, {len(whole)} with a whole "
      f"stack under churn_child_work; stacks of the others: {dict(why)}")
print("walks ended:", j.get("unwind", {}).get("walks_ended"))
PY
