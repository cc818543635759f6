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
source bench/scratch_fs.sh
scratch_fs
python3 bench/mount_bench.py "$PWD" "$PWD/build" "$WORK" \
  "${DTKFS_KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}" "${DTKFS_BENCH_ROUNDS:-5}" \
  ${DTKFS_BENCH_PARTS:-}
