#!/usr/bin/env bash
# make soak: `kscope top` on its live screen (in tmux) and `kscope faults -p` on a churning
# workload at the same time, for SOAK_SECONDS (default 600). The workload (tests/progs/churnprog
# soak) starts and reaps short processes, starts threads that rename themselves and fault pages
# in, dlopen()s and dlclose()s libraries, maps and unmaps executable memory and renames its main
# thread; it is both faults' -p target and part of what top sees.
#
# Once every SOAK_INTERVAL seconds (default 60), for each kscope: resident memory (VmRSS), open
# fds (/proc/PID/fd) and BPF map memory (the sum of memlock over the distinct maps it holds,
# from /proc/PID/fdinfo). After the warm-up sample (at 120 s, or a third of a shorter run) the
# figures must stay flat: at every later sample, RSS at most 5% or 2 MiB (whichever is larger)
# above the warm-up one, BPF map memory at most 2% or 1 MiB above it (maps that allocate entries
# on demand report what they hold, so their memory moves both ways), and at most 4 more open fds
# (top's files cache, up to 128, takes the binaries of processes new to it). Both must be alive at
# every sample and end normally; every drop they report is printed. Exit 1 otherwise.
# Usage: scripts/soak.sh BUILD_DIR [SECONDS]   (root; needs tmux)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seconds=${2:-${SOAK_SECONDS:-600}}
interval=${SOAK_INTERVAL:-60}
kscope=$build/kscope
churn=$build/progs/churnprog
[[ $(id -u) -eq 0 ]] || { echo "soak: needs root (BPF)" >&2; exit 2; }
command -v tmux > /dev/null || { echo "soak: tmux is not installed" >&2; exit 2; }
[[ -x $kscope && -x $churn ]] || { echo "soak: build first ($kscope, $churn)" >&2; exit 2; }
out=$build/soak
rm -rf "$out"
mkdir -p "$out"
sock=kscope-soak-$$
warm_at=$((seconds / 3 < 120 ? seconds / 3 : 120))

pids_to_kill=()
cleanup() {
  tmux -L "$sock" kill-server 2> /dev/null || true
  for p in "${pids_to_kill[@]}"; do kill -9 "$p" 2> /dev/null || true; done
}
trap cleanup EXIT

"$churn" soak 0 > "$out/churn.out" 2> "$out/churn.err" &
target=$!
pids_to_kill+=("$target")
for _ in $(seq 100); do grep -q ready "$out/churn.out" && break; sleep 0.1; done

# top's live screen, as a person runs it; its stderr (the whole-run lost line) kept, and what it
# holds per thread, process and stack at every refresh (KSCOPE_TOP_SIZES) in top-sizes.txt.
tmux -L "$sock" -f /dev/null new-session -d -s soak -x 160 -y 50 \
  "KSCOPE_TOP_SIZES=$out/top-sizes.txt $kscope top -v 2> $out/top.err; echo \$? > $out/top.rc"
# What kscope faults holds per process, thread and fault, once a second (KSCOPE_FAULTS_SIZES).
KSCOPE_FAULTS_SIZES=$out/faults-sizes.txt "$kscope" faults -p "$target" --no-plot \
  > "$out/faults.out" 2> "$out/faults.err" &
faults=$!
pids_to_kill+=("$faults")
top=""
for _ in $(seq 600); do
  top=$(pgrep -f -n "^$kscope top -v\$" || true)
  [[ -n $top ]] && grep -q tracing "$out/faults.err" 2> /dev/null && break
  sleep 0.1
done
[[ -n $top ]] || { echo "soak: kscope top did not start" >&2; exit 1; }

# RSS KiB, fds, BPF map bytes (memlock summed over distinct map ids) of one process.
measure() {
  local pid=$1 rss fds mem
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2> /dev/null || echo 0)
  fds=$(ls "/proc/$pid/fd" 2> /dev/null | wc -l)
  mem=$(awk 'FNR == 1 { if (id != "") m[id] = ml; id = ""; ml = 0 }
             /^memlock:/ { ml = $2 } /^map_id:/ { id = $2 }
             END { if (id != "") m[id] = ml; s = 0; for (i in m) s += m[i]; print s }' \
    "/proc/$pid/fdinfo/"* 2> /dev/null || echo 0)
  echo "$rss $fds $mem"
}

echo "t_s,top_rss_kib,top_fds,top_bpf_bytes,faults_rss_kib,faults_fds,faults_bpf_bytes,load1" > "$out/samples.csv"
start=$(date +%s)
status=0
sample() {
  local t=$(($(date +%s) - start))
  for p in "$top" "$faults"; do
    kill -0 "$p" 2> /dev/null || { echo "soak: kscope (pid $p) died at ${t} s" >&2; status=1; }
  done
  read -r tr tf tm <<< "$(measure "$top")"
  read -r fr ff fm <<< "$(measure "$faults")"
  echo "$t,$tr,$tf,$tm,$fr,$ff,$fm,$(cut -d' ' -f1 /proc/loadavg)" >> "$out/samples.csv"
  echo "soak: ${t} s: top rss ${tr} KiB fds ${tf} bpf ${tm} B | faults rss ${fr} KiB fds ${ff} bpf ${fm} B" >&2
}
sample
next=$interval
while (($(date +%s) - start < seconds)); do
  sleep 1
  if (($(date +%s) - start >= next)); then
    sample
    next=$((next + interval))
  fi
done
sample

# End both normally: q on the live screen, Ctrl-C (SIGINT) for faults.
tmux -L "$sock" send-keys -t soak q
kill -INT "$faults"
wait "$faults" && frc=0 || frc=$?
for _ in $(seq 300); do [[ -f $out/top.rc ]] && break; sleep 0.1; done
trc=$(cat "$out/top.rc" 2> /dev/null || echo "none")
kill "$target" 2> /dev/null || true
wait "$target" 2> /dev/null || true
[[ $frc -eq 0 ]] || { echo "soak: kscope faults exited with $frc" >&2; status=1; }
[[ $trc == 0 ]] || { echo "soak: kscope top exited with $trc" >&2; status=1; }

echo "soak: kscope top's containers at the warm-up sample and at the end (KSCOPE_TOP_SIZES):" >&2
awk -v w=$((warm_at * 1000)) '{ split($1, t, "="); if (t[2] + 0 <= w) first = $0; last = $0 }
  END { print "  " first; print "  " last }' "$out/top-sizes.txt" >&2 || true

echo "soak: kscope faults' containers at the warm-up sample and at the end (KSCOPE_FAULTS_SIZES):" >&2
awk -v w=$((warm_at * 1000)) '{ split($1, t, "="); if (t[2] + 0 <= w) first = $0; last = $0 }
  END { print "  " first; print "  " last }' "$out/faults-sizes.txt" >&2 || true

echo "soak: drops reported:" >&2
grep -hiE "lost|drop" "$out/faults.out" "$out/faults.err" "$out/top.err" >&2 || echo "  none" >&2
cat "$out/churn.out" >&2

# Flat after the warm-up: every sample from the one nearest warm_at on, against that one.
python3 - "$out/samples.csv" "$warm_at" << 'PY' || status=1
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
warm_at = int(sys.argv[2])
warm = min(rows, key=lambda r: abs(int(r["t_s"]) - warm_at))
later = [r for r in rows if int(r["t_s"]) > int(warm["t_s"])]
# (column, relative bound, absolute bound): how far above the warm-up sample a later one may be.
bounds = (("rss_kib", 0.05, 2048), ("bpf_bytes", 0.02, 1 << 20), ("fds", 0, 4))
bad = []
for who in ("top", "faults"):
    for col, rel, ab in bounds:
        w = int(warm[f"{who}_{col}"])
        peak = max((int(r[f"{who}_{col}"]) for r in later), default=w)
        limit = w + max(rel * w, ab)
        print(f"soak: {who} {col}: {w} at the warm-up, at most {peak} after it (bound {limit:.0f})",
              file=sys.stderr)
        if peak > limit:
            bad.append(f"{who} {col} {w} -> {peak}")
print(f"soak: warm-up sample at {warm['t_s']} s, last at {rows[-1]['t_s']} s: " +
      ("flat" if not bad else "NOT flat: " + "; ".join(bad)), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
echo "soak: samples in $out/samples.csv" >&2
exit $status
