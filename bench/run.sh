#!/usr/bin/env bash
# The speed benchmark (issue "Speed: close to native"): every workload on native ext4, bindfs,
# mergerfs, dtkfs and dtkfs with size tracking off (-o track_sizes=off), the targets
# alternating within each round, several rounds; medians and ratios go into the speed-bench
# section of docs/benchmarks.md, with the chart docs/benchmarks-speed.svg. See
# bench/run_bench.py for the workloads and the options each peer gets. Needs root (loop
# mounts, drop_caches); installs the peers with ./scripts/deps.sh bench and builds dtkfs
# Release. About 7 minutes a round on a loaded 2-core VM, 5 without the whole tree.
#
# Usage: ./bench/run.sh
# Environment:
#   DTKFS_BENCH_ROUNDS    rounds (default 3)
#   DTKFS_BENCH_DIR       scratch (default /var/tmp/dtkfs-bench; this benchmark uses its
#                         speed/, one loop-mounted ext4 of DTKFS_BENCH_DISK bytes per target,
#                         default 16G, sparse)
#   DTKFS_BENCH_WHOLE     0: skip the whole kernel tree (when short on time)
#   DTKFS_BENCH_PARTS     top-level directories of the kernel subset (default "fs include lib
#                         kernel net mm")
#   DTKFS_BENCH_REF       measure this commit instead of the working tree (git archive, built
#                         Release in $DTKFS_BENCH_DIR/speed-build)
#   DTKFS_BENCH_BINARY    measure this dtkfs binary instead (nothing is built)
#   DTKFS_KERNEL_TARBALL  (default /usr/src/linux-source-6.1.tar.xz, Debian linux-source-6.1)
#   DTKFS_BENCH_NICE      e.g. -10: run in a session of its own with that nice value, also for
#                         the session's scheduler autogroup (for shared, busy machines; every
#                         target's daemon inherits it, so all get the same priority)
#   and the sizes for short runs that bench/run_bench.py lists (DTKFS_BENCH_ONLY,
#   DTKFS_BENCH_SEQ_MIB, DTKFS_BENCH_FIO_*, DTKFS_BENCH_APPENDS, DTKFS_BENCH_XATTR_SECONDS,
#   DTKFS_BENCH_DOC).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "bench/run.sh: needs root (loop mounts, drop_caches)" >&2; exit 1; }
./scripts/deps.sh bench
if [[ -n ${DTKFS_BENCH_NICE:-} ]]; then
  # A session of our own, so the autogroup nice below applies to the benchmark only.
  if [[ $(ps -o sid= -p $$ | tr -d ' ') != "$$" ]]; then exec setsid -w "$0" "$@"; fi
  echo "$DTKFS_BENCH_NICE" >/proc/self/autogroup 2>/dev/null || echo "bench/run.sh: could not set the autogroup nice" >&2
  renice -n "$DTKFS_BENCH_NICE" -p $$ >/dev/null || echo "bench/run.sh: could not renice" >&2
fi
BENCH_DIR=${DTKFS_BENCH_DIR:-/var/tmp/dtkfs-bench}
WORK=$BENCH_DIR/speed
mkdir -p "$BENCH_DIR"
source bench/bench_binary.sh
bench_binary speed
/usr/bin/python3 -B bench/run_bench.py "$PWD" "$BINARY" "$WORK" \
  "${DTKFS_KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}" "${DTKFS_BENCH_ROUNDS:-3}"
