#!/usr/bin/env bash
# The mount benchmark (issue "dtkfs mount"), side by side in one run:
#  1. extract the linux-source-6.1 tarball into native ext4, bindfs --multithreaded,
#     mergerfs and dtkfs, alternating (hyperfine), and report each as a ratio of native;
#  2. getfattr -n user.total_bytes of the extracted root on dtkfs vs du -sb of it;
#  3. in-process getxattr round trip on dtkfs vs mergerfs (a stat-like call on each);
#  4. mount time of a 100k-file tree: first mount (scan) vs a mount from the index.
# Writes the "Mount" section of docs/benchmarks.md. Needs root (mounts) and the peers:
#   ./scripts/deps.sh bench
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh bench
./scripts/build.sh >/dev/null
DTKFS=$PWD/build/dtkfs
TARBALL=/usr/src/linux-source-6.1.tar.xz
WORK=${DTKFS_BENCH_DIR:-/var/tmp/dtkfs-bench}/mount
RUNS=${DTKFS_BENCH_RUNS:-5}
rm -rf "$WORK"
mkdir -p "$WORK"/{native,bindfs-src,bindfs,mergerfs-src,mergerfs,dtkfs-src,dtkfs,state,json}
export XDG_STATE_HOME="$WORK/state"

# An uncompressed copy of the tarball, so decompression does not dominate the timings.
TAR="$WORK/linux.tar"
xz -dc "$TARBALL" >"$TAR"

mounted=()
cleanup() {
  for m in "${mounted[@]}"; do fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" || true; done
}
trap cleanup EXIT

bindfs --multithreaded "$WORK/bindfs-src" "$WORK/bindfs"; mounted+=("$WORK/bindfs")
mergerfs -o cache.files=off,threads=4 "$WORK/mergerfs-src" "$WORK/mergerfs"; mounted+=("$WORK/mergerfs")
"$DTKFS" mount "$WORK/dtkfs-src" "$WORK/dtkfs" 2>/dev/null; mounted+=("$WORK/dtkfs")

for t in native bindfs mergerfs dtkfs; do
  cmds+=("rm -rf $WORK/$t/linux-source-6.1 && tar -xf $TAR -C $WORK/$t")
  names+=("-n" "$t")
done
hyperfine --style basic -w 1 -r "$RUNS" "${names[@]}" "${cmds[@]}" \
  --export-json "$WORK/json/extract.json" >&2

# getfattr of the root vs du -sb (both on the extracted tree on dtkfs)
R="$WORK/dtkfs/linux-source-6.1"
hyperfine --style basic -N -w 3 -r 20 -n getfattr "getfattr -n user.total_bytes $R" \
  -n "du -sb" "du -sb $R" --export-json "$WORK/json/query.json" >&2
exact_dtkfs=$(getfattr --only-values -n user.total_bytes "$R")
exact_ref=$(find "$WORK/dtkfs-src/linux-source-6.1" -mindepth 1 ! -type d -printf '%s\n' | awk '{s+=$1} END {print s+0}')

# 100k-file tree: first mount (scan) vs mount from the index
T="$WORK/tree100k"
mkdir -p "$T/src" "$T/mnt"
python3 - "$T/src" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(1000):
    p = os.path.join(root, f"d{d // 100}", f"e{d}")
    os.makedirs(p, exist_ok=True)
    for f in range(100):
        with open(os.path.join(p, f"f{f}"), "wb") as fh:
            fh.write(b"x" * (f * 37 % 4096))
PY
first_ms() {
  local s e
  s=$(date +%s%N); "$DTKFS" mount "$T/src" "$T/mnt" --index "$T/idx" 2>/dev/null; e=$(date +%s%N)
  "$DTKFS" umount "$T/mnt"
  echo $(((e - s) / 1000000))
}
rm -f "$T/idx"; scan_ms=$(first_ms)
warm_ms=$(first_ms)

python3 - "$WORK/json" "$scan_ms" "$warm_ms" "$exact_dtkfs" "$exact_ref" >"$WORK/section.md" <<'PY'
import json, sys, os
d = sys.argv[1]
ext = {r["command"]: r for r in json.load(open(os.path.join(d, "extract.json")))["results"]}
q = {r["command"]: r for r in json.load(open(os.path.join(d, "query.json")))["results"]}
nat = ext["native"]["median"]
print("## Mount (issue: dtkfs mount)\n")
print("Extracting the linux-source-6.1 tarball (uncompressed first; ~83k entries), medians:\n")
print("| target | median s | ratio to native ext4 |\n|---|---|---|")
for k in ["native", "bindfs", "mergerfs", "dtkfs"]:
    print(f"| {k} | {ext[k]['median']:.2f} | {ext[k]['median']/nat:.2f}x |")
best = min(ext['bindfs']['median'], ext['mergerfs']['median'])
print(f"\ndtkfs vs the faster peer: {ext['dtkfs']['median']/best:.2f}x (goal: at most 1.0x)\n")
g, du = q["getfattr"]["median"], q["du -sb"]["median"]
print("Size of the extracted root, on the dtkfs mount:\n")
print("| command | median ms |\n|---|---|")
print(f"| getfattr -n user.total_bytes | {g*1000:.2f} |\n| du -sb | {du*1000:.1f} |")
print(f"\ngetfattr is {du/g:.0f}x faster than du -sb (process start included); "
      f"value {sys.argv[4]} = reference walk {sys.argv[5]}.\n")
print("Mount of a 100k-file tree (1,111 directories):\n")
print(f"| first mount (scan + index write) | {sys.argv[2]} ms |\n|---|---|\n| mount from the index | {sys.argv[3]} ms |")
PY
python3 - docs/benchmarks.md "$WORK/section.md" <<'PY'
import sys, re
doc, sec = sys.argv[1], open(sys.argv[2]).read()
try:
    text = open(doc).read()
except FileNotFoundError:
    text = "# Benchmarks\n\n"
start = text.find("## Mount (issue: dtkfs mount)")
if start >= 0:
    end = text.find("\n## ", start + 5)
    text = text[:start] + sec + ("" if end < 0 else text[end:])
else:
    text = text.rstrip() + "\n\n" + sec
open(doc, "w").write(text)
PY
cat "$WORK/section.md"
