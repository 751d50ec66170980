#!/usr/bin/env bash
# Install the Debian packages kscope needs to build and test, only those that are missing.
# Quiet when nothing is missing. Usage: scripts/deps.sh [build|check|bench|fault-patterns]
set -euo pipefail
profile=${1:-build}
build_pkgs=(cmake make g++ clang llvm pkg-config libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev
  libzstd-dev libcli11-dev libfmt-dev nlohmann-json3-dev libncurses-dev libsqlite3-dev
  libgtest-dev libgmock-dev libdebuginfod-dev liblzma-dev)
# check: go tool pprof reads the pprof export, sqlite3 the database, chromium renders the report,
# prometheus scrapes kscope monitor --listen, mandoc and groff lint the man page; the symbol tests
# serve debug files with debuginfod, make MiniDebugInfo with binutils + xz, name libc internals
# from libc6-dbg, JIT frames from node; libclang-rt-14-dev: libFuzzer and the sanitizer runtimes
# for make fuzz / check-sanitize.
check_pkgs=(clang-format procps python3 tmux golang-go sqlite3 chromium prometheus util-linux
  mandoc groff-base debuginfod elfutils binutils xz-utils libc6-dbg nodejs libclang-rt-14-dev)
check_pkgs+=(strace)  # tests/runtime/symbols_runtime_test.cpp: no file opened twice (strace -f)
bench_pkgs=(linux-perf bpftrace libbpf-tools bc)
# make fault-patterns: the real programs of docs/fault-patterns.md, and chromium for the PNGs.
pattern_pkgs=(g++ sysbench iperf3 chromium)
pkgs=("${build_pkgs[@]}")
case "$profile" in
  build) ;;
  check) pkgs+=("${check_pkgs[@]}") ;;
  bench) pkgs+=("${check_pkgs[@]}" "${bench_pkgs[@]}") ;;
  fault-patterns) pkgs+=("${pattern_pkgs[@]}") ;;
  *) echo "deps.sh: unknown profile '$profile' (build|check|bench|fault-patterns)" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "kscope: missing Debian packages: ${missing[*]}" >&2
  echo "kscope: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "kscope: installing missing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
