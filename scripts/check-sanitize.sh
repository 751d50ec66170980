#!/usr/bin/env bash
# make check-sanitize: the unit tests, and (as root) the runtime tests, built with AddressSanitizer
# + UBSan (KSCOPE_SANITIZE) into their own build directory. Any ASan/UBSan/LeakSanitizer report
# aborts the test process, so it fails the test that made it.
# Usage: scripts/check-sanitize.sh BUILD_DIR JOBS RUNTIME
#   RUNTIME: all (every runtime test), none, or a ctest -R regex choosing runtime tests.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-sanitize}
jobs=${2:-$(nproc)}
runtime=${3:-all}
start=$(date +%s)
scripts/sanitize-configure.sh "$dir"
cmake --build "$dir" -j"$jobs" -- --no-print-directory
built=$(date +%s)
echo "check-sanitize: built in $((built - start)) s" >&2
# detect_leaks: leaks are reports too. halt_on_error (UBSan): a report is a failure, not a line.
# kscope's runtime tests start kscope itself; these options reach it through the environment.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Leaks inside system libraries that kscope cannot free (each explained in the file).
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan-suppressions.txt${LSAN_OPTIONS:+:$LSAN_OPTIONS}
summary="$PWD/scripts/test-failures.sh"  # the failing tests' reasons, at the end
cd "$dir"
status=0
ctest --output-on-failure -j1 --timeout 600 -LE runtime || { status=1; "$summary" .; }
unit_done=$(date +%s)
echo "check-sanitize: unit tests in $((unit_done - built)) s" >&2
if [[ $(id -u) -eq 0 && "$runtime" != none ]]; then
  if [[ "$runtime" == all ]]; then
    ctest --output-on-failure -j1 --timeout 900 -L runtime || { status=1; "$summary" .; }
  else
    ctest --output-on-failure -j1 --timeout 900 -L runtime -R "$runtime" || { status=1; "$summary" .; }
  fi
  echo "check-sanitize: runtime tests in $(($(date +%s) - unit_done)) s" >&2
elif [[ $(id -u) -ne 0 ]]; then
  echo "check-sanitize: not root, runtime tests skipped" >&2
fi
echo "check-sanitize: built and tested in $(($(date +%s) - start)) s" >&2
exit $status
