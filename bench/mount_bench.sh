#!/usr/bin/env bash
# The mount benchmark (issue "dtkfs mount"): native ext4, bindfs, mergerfs and dtkfs side by
# side in one run (workloads, size queries, getxattr round trip, mount time). See
# bench/mount_bench.py for what is measured; it writes the mount-bench section of
# docs/benchmarks.md. Needs root (mounts); installs the peers with ./scripts/deps.sh bench.
# Environment: DTKFS_BENCH_DIR (default /var/tmp/dtkfs-bench; scratch in its mount/, a
#              loop-mounted ext4 of DTKFS_BENCH_DISK bytes, default 16G, sparse),
#              DTKFS_BENCH_ROUNDS (default 5), DTKFS_KERNEL_TARBALL,
#              DTKFS_BENCH_PARTS: top-level directories of the kernel tree to use, e.g.
#              "fs include net" (default: the whole tree; on a slow 2-core VM a full round
#              takes over 20 minutes, bindfs alone about 6 per extraction).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh bench
./scripts/build.sh >/dev/null
WORK=${DTKFS_BENCH_DIR:-/var/tmp/dtkfs-bench}/mount
# Mounts left by an interrupted run: unmount them before removing the scratch directory.
if [[ -d $WORK ]]; then
  { findmnt -rn -o TARGET | grep -F "$WORK/" || true; } | while read -r m; do
    fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m"
  done
fi
if mountpoint -q "$WORK"; then umount "$WORK"; fi
rm -rf "$WORK" "$WORK.img"
# Every tree lives on a fresh ext4 with a journal, in a loop file: the same filesystem for
# all targets, and the common ext4 setup. (On an ext4 without a journal, the inode
# allocator skips inodes freed in the last minutes, so an extraction right after a removal
# is many times slower and the figures measure that instead of the FUSE layer.)
mkdir -p "$WORK"
truncate -s "${DTKFS_BENCH_DISK:-16G}" "$WORK.img"
mkfs.ext4 -q -F "$WORK.img"
mount -o loop "$WORK.img" "$WORK"
cleanup() {
  umount "$WORK" 2>/dev/null || umount -l "$WORK"
  rm -f "$WORK.img"
}
trap cleanup EXIT
python3 bench/mount_bench.py "$PWD" "$PWD/build" "$WORK" \
  "${DTKFS_KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}" "${DTKFS_BENCH_ROUNDS:-5}" \
  ${DTKFS_BENCH_PARTS:-}
