#!/usr/bin/env bash
# Configures the one clang build directory that make check-sanitize and make fuzz share: the
# whole tree compiled with -fsanitize=fuzzer-no-link,address,undefined (KSCOPE_FUZZ +
# KSCOPE_SANITIZE). The tests and kscope link ASan + UBSan; only the fuzz targets add libFuzzer's
# main (-fsanitize=fuzzer), so one compile of the layers serves both (docs/RELIABILITY.md).
# Usage: scripts/sanitize-configure.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/sanitize-configure.sh BUILD_DIR}
if [[ -f "$dir/CMakeCache.txt" ]]; then
  if grep -q '^KSCOPE_FUZZ:BOOL=ON$' "$dir/CMakeCache.txt" &&
    grep -q '^KSCOPE_SANITIZE:BOOL=ON$' "$dir/CMakeCache.txt"; then
    exit 0
  fi
  echo "kscope: $dir was configured for another build (not KSCOPE_SANITIZE + KSCOPE_FUZZ with" \
    "clang); remove it, or choose another directory (SANITIZE_DIR=...)" >&2
  exit 1
fi
mkdir -p "$dir"
CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKSCOPE_SANITIZE=ON \
  -DKSCOPE_FUZZ=ON > "$dir.configure.log" 2>&1 || { cat "$dir.configure.log" >&2; exit 1; }
