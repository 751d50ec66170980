#!/usr/bin/env bash
# Install the Debian packages kscope needs to build and test, only those that are missing.
# Quiet when nothing is missing. Usage: scripts/deps.sh [build|check|bench]
set -euo pipefail
profile=${1:-build}
build_pkgs=(cmake make g++ clang llvm pkg-config libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev
  libzstd-dev libcli11-dev libfmt-dev nlohmann-json3-dev libncurses-dev libsqlite3-dev
  libgtest-dev libgmock-dev)
check_pkgs=(procps python3 tmux prometheus util-linux)
bench_pkgs=(linux-perf bpftrace libbpf-tools bc)
pkgs=("${build_pkgs[@]}")
case "$profile" in
  build) ;;
  check) pkgs+=("${check_pkgs[@]}") ;;
  bench) pkgs+=("${check_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "deps.sh: unknown profile '$profile' (build|check|bench)" >&2; exit 2 ;;
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
