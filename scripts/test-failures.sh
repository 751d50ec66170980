#!/usr/bin/env bash
# Prints, after a failed `ctest`, what each failing test printed around its failures, so the
# reasons are at the end of a long log (CI shows its head and tail). Usage: test-failures.sh BUILD_DIR
set -uo pipefail
log="${1:-build}/Testing/Temporary/LastTest.log"
[[ -r "$log" ]] || { echo "kscope: no test log at $log" >&2; exit 0; }
echo
echo "==== why the failing tests failed (from $log) ===="
awk '
  /^[0-9]+\/[0-9]+ Testing: / { name = $3; n = 0; delete lines; next }
  /^Output:$/ { inout = 1; next }
  /^<end of output>$/ { inout = 0; next }
  inout && n == 0 && /^-+$/ { next }  # the rule under "Output:"
  inout { lines[n++] = $0; next }
  # ctest ends every failed test this way, whether it failed, crashed or timed out.
  /^Test Failed\.$/ {
    print "---- " name " ----"
    # Every failure line with what follows it, then the last lines (a crash, a timeout).
    shown = 0
    for (i = 0; i < n && shown < 120; i++) {
      if (lines[i] ~ /Failure$|Failure[^a-z]|FAILED|Sanitizer|runtime error|Segmentation|Aborted|terminate called/) {
        for (j = i; j < n && j < i + 25 && shown < 120; j++) { print lines[j]; shown++ }
        i = j - 1
      }
    }
    if (shown == 0) for (i = (n > 40 ? n - 40 : 0); i < n; i++) print lines[i]
    print "[" $0 "]"
  }
' "$log"
