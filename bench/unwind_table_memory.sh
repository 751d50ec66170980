#!/bin/bash
# BPF map memory of the native unwinder's tables with a g++ compile traced system-wide.
#
#   bench/unwind_table_memory.sh [ROUNDS] [COMPILES]      (root; default 3 rounds of 4 compiles)
#
# Each round runs `kscope top --once --format json` (whole system, --call-graph dwarf) while
# g++ -O2 compiles a C++ file COMPILES times (a new cc1plus, as, collect2/ld each time), and reads
# what kscope says (unwind.table_files, table_rows, table_bytes, early_mappings) and what the
# kernel charges for each of kscope's unwind maps (bpftool map show: bytes_memlock) while it
# runs. Prints one line per round and the medians.
set -euo pipefail
ROUNDS=${1:-3}
COMPILES=${2:-4}
KSCOPE=${KSCOPE:-$(dirname "$0")/../build/kscope}
[[ $(id -u) -eq 0 ]] || { echo "bench: needs root" >&2; exit 1; }
for t in g++ bpftool jq; do
  command -v "$t" >/dev/null || { echo "bench: $t is required" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/prog.cpp" <<'CXX'
#include <algorithm>
#include <iostream>
#include <map>
#include <regex>
#include <string>
#include <vector>
int main(int argc, char** argv) {
  std::map<std::string, std::vector<int>> m;
  for (int i = 0; i < argc; ++i) m[argv[i]].push_back(i);
  std::regex re("[a-z]+");
  for (auto& [k, v] : m) std::cout << k << std::regex_match(k, re) << v.size() << "\n";
}
CXX
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2); else print "n/a"}'; }
echo "round files rows table_MiB map_memlock_MiB(unwind_*) noted_early"
for r in $(seq 1 "$ROUNDS"); do
  json=$tmp/top-$r.json
  # Long enough for the compiles; --once prints at the end.
  "$KSCOPE" top --once --duration 600 --format json > "$json" 2> "$tmp/top-$r.err" &
  kpid=$!
  for _ in $(seq 1 1800); do
    grep -q "measuring" "$tmp/top-$r.err" 2>/dev/null && break
    sleep 0.1
  done
  for c in $(seq 1 "$COMPILES"); do g++ -O2 -c "$tmp/prog.cpp" -o "$tmp/prog-$c.o"; done
  # The kernel's charge for this kscope's unwind maps (those it holds open: other kscope runs on
  # the machine have their own) while the tables are loaded.
  memlock=$(for fd in /proc/"$kpid"/fdinfo/*; do
      id=$(awk '/^map_id:/ {print $2}' "$fd" 2>/dev/null) || continue
      # (|| true: the last fd's empty id must not fail the pipeline, which under set -e -o
      # pipefail ended the script here and left kscope running: no table on 2026-11-30.)
      if [[ -n $id ]]; then bpftool -j map show id "$id" || true; fi
    done | jq -s '[.[] | select(.name | startswith("unwind_") or . == "ustacks") | .bytes_memlock] | add // 0')
  kill -INT "$kpid"
  wait "$kpid" || true
  read -r files rows bytes noted < <(jq -r '.unwind | "\(.table_files) \(.table_rows) \(.table_bytes) \(.early_mappings.noted)"' "$json")
  printf '%s %s %s %.1f %.1f %s\n' "$r" "$files" "$rows" "$(echo "$bytes / 1048576" | bc -l)" \
    "$(echo "$memlock / 1048576" | bc -l)" "$noted" | tee -a "$tmp/rows"
done
echo "median: files $(awk '{print $2}' "$tmp/rows" | median), rows $(awk '{print $3}' "$tmp/rows" | median), table MiB $(awk '{print $4}' "$tmp/rows" | median), map memlock MiB $(awk '{print $5}' "$tmp/rows" | median)"
