#!/usr/bin/env bash
# make fuzz / make fuzz-smoke: builds the libFuzzer targets of tests/fuzz with clang into their
# own build directory and runs each for SECONDS from its seed corpus (tests/fuzz/corpus/NAME,
# read-only: new inputs go to a scratch corpus in the build directory). Any crash, leak, ASan or
# UBSan report, or timeout fails; the input that caused it is left as BUILD_DIR/fuzz/crash-*.
# Usage: scripts/fuzz.sh BUILD_DIR JOBS SECONDS [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-sanitize}
jobs=${2:-$(nproc)}
seconds=${3:-60}
shift 3 || true
scripts/sanitize-configure.sh "$dir"
cmake --build "$dir" -j"$jobs" --target fuzz_targets -- --no-print-directory
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for c in tests/fuzz/corpus/*/; do targets+=("$(basename "$c")"); done
fi
failed=()
for t in "${targets[@]}"; do
  bin="$dir/fuzz/fuzz_$t"
  seeds="tests/fuzz/corpus/$t"
  [[ -x "$bin" && -d "$seeds" ]] || { echo "fuzz: no target or corpus for '$t'" >&2; exit 2; }
  work="$dir/fuzz/work/$t"
  mkdir -p "$work"
  log="$dir/fuzz/$t.log"
  # -timeout: one input taking longer than 10 s is a hang; -rss_limit_mb: a runaway allocation.
  if (cd "$dir/fuzz" && "./fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "work/$t" "$OLDPWD/$seeds") > "$log" 2>&1; then
    echo "fuzz: $t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in ${seconds} s, no crash" >&2
  else
    echo "fuzz: $t: FAILED (log: $log)" >&2
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -5 >&2 || true
    failed+=("$t")
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
