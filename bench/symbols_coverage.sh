#!/usr/bin/env bash
# Share of page faults whose code location kscope names, on real Debian programs (docs/symbols.md).
# One recording per program, made by BEFORE (a kscope from before the symbols block, so the
# recording holds no stored names and every reader resolves from the files), then read by:
#   before        BEFORE's reader (own .symtab, build-id directory, debuglink, .dynsym)
#   after         this kscope (+ MiniDebugInfo, debuginfod when DEBUGINFOD_URLS is set, JIT maps)
#   after-no-dbg  this kscope with no debug directory and no debuginfod (no -dbg packages)
# Usage (root): bench/symbols_coverage.sh BEFORE_KSCOPE [AFTER_KSCOPE] [SCALE]
#   SCALE multiplies the work (default 1: a few seconds per program).
# Then the frames of call stacks: `kscope faults --stacks` recordings made by AFTER, once as is
# and once with --debug-dir /nonexistent --no-debuginfod (a finished recording stores the names
# it resolved, so the debug sources that count are those of the recording run): the share of
# user frames (over every fault's stack, "[incomplete: ...]" markers left out) resolved to a
# function. BEFORE has no column there: faults had no call stacks before the native unwinder.
set -euo pipefail
before=${1:?usage: symbols_coverage.sh BEFORE_KSCOPE [AFTER_KSCOPE] [SCALE]}
after=${2:-$(dirname "$0")/../build/kscope}
scale=${3:-1}
work=$(mktemp -d /tmp/kscope-symcov.XXXXXX)
trap 'rm -rf "$work"' EXIT

head -c $((8 * 1024 * 1024 * scale)) /dev/urandom | base64 > "$work/input.txt"
cat > "$work/work.py" <<PY
import json, re, collections
words = collections.Counter()
for i in range(${scale} * 20000):
    s = json.dumps({"i": i, "v": [i, str(i), {"k": i * 2}]})
    words.update(re.findall(r"[a-z]+", s))
print(len(words))
PY
printf '#include <vector>\n#include <map>\n#include <string>\nint main(){std::map<std::string,std::vector<int>> m; m["a"].push_back(1); return (int)m.size()-1;}\n' > "$work/prog.cpp"

declare -A commands=(
  [python3]="python3 $work/work.py"
  [xz]="xz -6 -c $work/input.txt"
  [gzip]="gzip -6 -c $work/input.txt"
  [g++]="g++ -O1 -c $work/prog.cpp -o $work/prog.o"
)

share() {  # share of faults whose frame is resolved, from a sqlite export
  sqlite3 "$1" "SELECT printf('%d/%d = %.1f%%', sum(fr.resolved), count(*),
                100.0 * sum(fr.resolved) / count(*))
                FROM faults f JOIN frames fr ON f.frame_id = fr.id"
}

printf '%-8s %-28s %-28s %-28s\n' program before after after-no-dbg
for name in python3 xz gzip g++; do
  rec="$work/$name.kscope"
  # shellcheck disable=SC2086
  "$before" faults --no-plot -o "$rec" -- ${commands[$name]} > /dev/null 2> "$work/$name.err"
  "$before" export "$rec" --format sqlite -o "$work/$name.before.db" 2>/dev/null
  "$after" export "$rec" --format sqlite -o "$work/$name.after.db" 2>/dev/null
  "$after" --debug-dir /nonexistent --no-debuginfod export "$rec" --format sqlite \
    -o "$work/$name.nodbg.db" 2>/dev/null
  printf '%-8s %-28s %-28s %-28s\n' "$name" "$(share "$work/$name.before.db")" \
    "$(share "$work/$name.after.db")" "$(share "$work/$name.nodbg.db")"
done

frames() {  # share of user stack frames resolved, over every fault's stack, from a sqlite export
  sqlite3 "$1" "SELECT printf('%d/%d = %.1f%%', sum(fr.resolved), count(*),
                100.0 * sum(fr.resolved) / count(*))
                FROM faults f JOIN stacks s ON f.stack_id = s.stack_id
                JOIN frames fr ON s.frame_id = fr.id
                WHERE fr.kernel = 0 AND coalesce(fr.label, '') NOT LIKE '[incomplete%'"
}

echo
printf '%-8s %-28s %-28s\n' program 'frames: after' 'frames: after-no-dbg (recorded so)'
for name in python3 xz gzip g++; do
  # shellcheck disable=SC2086
  "$after" faults --stacks --no-plot -o "$work/$name.sa.kscope" -- ${commands[$name]} \
    > /dev/null 2> "$work/$name.sa.err"
  # shellcheck disable=SC2086
  "$after" --debug-dir /nonexistent --no-debuginfod faults --stacks --no-plot \
    -o "$work/$name.sn.kscope" -- ${commands[$name]} > /dev/null 2> "$work/$name.sn.err"
  "$after" export "$work/$name.sa.kscope" --format sqlite -o "$work/$name.sa.db" 2>/dev/null
  "$after" export "$work/$name.sn.kscope" --format sqlite -o "$work/$name.sn.db" 2>/dev/null
  printf '%-8s %-28s %-28s\n' "$name" "$(frames "$work/$name.sa.db")" "$(frames "$work/$name.sn.db")"
done
