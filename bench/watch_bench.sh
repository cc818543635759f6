#!/usr/bin/env bash
# The watcher benchmark (issue "changes beside the mount"): what watching the source costs and
# how fast it is, in one run. See bench/watch_bench.py for what is measured; it writes the
# watch-bench section of docs/benchmarks.md. Needs root (loop mount, fanotify); installs the
# tools with ./scripts/deps.sh bench. 10 to 15 minutes on a 2-core VM with the defaults.
# Environment: DTKFS_BENCH_DIR (default /var/tmp/dtkfs-bench; scratch in its watch/, a
#              loop-mounted ext4 of DTKFS_BENCH_DISK bytes, default 16G, sparse),
#              DTKFS_BENCH_ROUNDS (default 9): rounds of the in-mount workloads (the three
#              watch modes alternate in each); scans and verifications run max(7, this) times,
#              DTKFS_KERNEL_TARBALL (default /usr/src/linux-source-6.1.tar.xz),
#              DTKFS_BENCH_PARTS: top-level directories of the kernel tree to use, e.g.
#              "fs include net" (default: for the in-mount workloads "include sound fs net
#              kernel lib mm security crypto block", 15k entries, since the daemon needs an fd
#              per entry the kernel keeps and the whole tree exceeds an RLIMIT_NOFILE of 20000;
#              for the verification the whole tree),
#              DTKFS_WATCH_BENCH_BIG: files of the large tree for the verification (default
#              1000000, in directories of 1000),
#              DTKFS_WATCH_BENCH_DIR_FILES: entries of the large directory that is appended to
#              beside the mount (default 100000),
#              DTKFS_WATCH_BENCH_APPENDS (default 20000), DTKFS_WATCH_BENCH_SAMPLES: latency
#              samples (default 300), DTKFS_WATCH_BENCH_STAGES: which parts to run (default
#              "workloads latency cpu verify"; the section is written only when all ran),
#              DTKFS_BENCH_REF: measure this commit instead of the working tree (exported
#              with git archive and built, dtkfs only, in $DTKFS_BENCH_DIR/watch-build; for
#              when the working tree holds someone's unfinished changes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh bench
WORK=${DTKFS_BENCH_DIR:-/var/tmp/dtkfs-bench}/watch
if [[ -n ${DTKFS_BENCH_REF:-} ]]; then
  BUILT=$WORK-build
  rm -rf "$BUILT" && mkdir -p "$BUILT/src"
  git archive "$DTKFS_BENCH_REF" | tar -x -C "$BUILT/src"
  cmake -S "$BUILT/src" -B "$BUILT/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILT/build" -j"$(nproc)" --target dtkfs >/dev/null
  BINARY=$BUILT/build/dtkfs
  export DTKFS_BENCH_COMMIT DTKFS_BENCH_SOURCE=$BUILT/src
  DTKFS_BENCH_COMMIT="\`$(git rev-parse --short "$DTKFS_BENCH_REF^{commit}")\` (git archive of it)"
else
  ./scripts/build.sh >/dev/null
  BINARY=build/dtkfs
fi
BIG=${DTKFS_WATCH_BENCH_BIG:-1000000}
# With inodes enough for the large tree (mkfs's default of one per 16 KiB gives a 16G disk
# 1M inodes).
source bench/scratch_fs.sh
scratch_fs -N $((BIG + 1500000))
# The binary as built now: a rebuild during the run (the tree is being worked on) must not
# change it under the benchmark.
cp "$BINARY" "$WORK/dtkfs"
python3 -B bench/watch_bench.py "$PWD" "$WORK/dtkfs" "$WORK" \
  "${DTKFS_KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}" "${DTKFS_BENCH_ROUNDS:-9}" "$BIG" \
  ${DTKFS_BENCH_PARTS:-}
