#!/usr/bin/env bash
# The journal benchmark (issue 13, "Measure", and the timing half of its "Cost" test): the
# write-intent journal's cost on the write path (kernel-subset extraction, 1 GiB sequential
# write; -o journal=on vs off, alternating, same run) and recovery after kill -9 (remount time
# against the number of changed directories, against a cold-cache `dtkfs scan` and a remount
# with -o journal=off, which rescans). See bench/journal_bench.py for the steps; it writes the
# journal-bench section of docs/benchmarks.md. Never a timed test: the tests assert counts.
# Needs root (loop mounts, drop_caches, the FUSE connection's abort); builds dtkfs Release.
# About 9 minutes with DTKFS_JOURNAL_RECOVERY_ROUNDS=2 on a loaded 2-core VM (2026-12-07), 4 of
# them the 100,000-directory crashes of the 1M-file tree (making 100,000 first changes through
# the mount takes 80 s with the journal); about 12 with the defaults.
#
# Usage: sudo ./bench/journal_bench.sh
# Environment:
#   DTKFS_BENCH_ROUNDS    rounds of the write-path part (default 7)
#   DTKFS_BENCH_DIR       scratch (default /var/tmp/dtkfs-bench; this benchmark uses its
#                         journal/, one loop-mounted ext4 of DTKFS_BENCH_DISK bytes per tree,
#                         default 16G, sparse)
#   DTKFS_BENCH_PARTS     top-level directories of the kernel subset (default "fs include lib
#                         kernel net mm")
#   DTKFS_BENCH_SEQ_MIB   size of the sequential write (default 1024)
#   DTKFS_BENCH_ONLY      "write", "recovery" or both (default both)
#   DTKFS_JOURNAL_TREES   recovery trees, FILES:FILES_PER_DIRECTORY each (default
#                         "200000:100 1000000:10": 2,000 and 100,000 leaf directories)
#   DTKFS_JOURNAL_CHANGES changed directories per crash (default "10 100 1000 100000", each
#                         capped at the tree's leaf directories)
#   DTKFS_JOURNAL_RECOVERY_ROUNDS  rounds of the recovery part (default 3)
#   DTKFS_BENCH_BINARY    measure this dtkfs binary instead (nothing is built)
#   DTKFS_BENCH_REF       measure a Release build of this commit (bench/bench_binary.sh)
#   DTKFS_KERNEL_TARBALL  (default /usr/src/linux-source-6.1.tar.xz, Debian linux-source-6.1)
#   DTKFS_BENCH_WRITE     0: print the section, do not write it
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "bench/journal_bench.sh: needs root (loop mounts, drop_caches)" >&2; exit 1; }
TARBALL=${DTKFS_KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
[[ -f $TARBALL ]] || ./scripts/deps.sh bench
BENCH_DIR=${DTKFS_BENCH_DIR:-/var/tmp/dtkfs-bench}
WORK=$BENCH_DIR/journal
mkdir -p "$BENCH_DIR"
source bench/bench_binary.sh
bench_binary journal
/usr/bin/python3 -B bench/journal_bench.py "$PWD" "$BINARY" "$WORK" "$TARBALL" \
  "${DTKFS_BENCH_ROUNDS:-7}"
