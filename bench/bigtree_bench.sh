#!/usr/bin/env bash
# The big-trees benchmark (issue "big trees"): a 10,000,000-file tree in about 1,000,000
# directories, made once, mounted, walked, renamed in and compacted, dtkfs beside native ext4
# and mergerfs in one run. See bench/bigtree_bench.py for what is measured; it writes the
# bigtree-bench section of docs/benchmarks.md. Needs root (loop mount, drop_caches); installs
# the peers with ./scripts/deps.sh bench. The dtkfs daemon runs with RLIMIT_NOFILE 1024 (soft
# and hard). The peers are compared on a tenth of the tree (g3, 1,000,000 files, walked
# through mounts of the whole tree: mergerfs's `du -sb` of all 10,000,000 files alone would
# take most of an hour); the whole tree is walked by dtkfs and native only, once.
# With the defaults 50 minutes on a 2-core VM shared with other work (load average 2 to 5;
# measured 2026-11-25): the tree 7, first mount (scan) and remount with its verification 6,
# the peers 13, the whole-tree walks 24 (dtkfs about 8.5 each, native 2.5 and 3.5); the
# scratch image holds ~4 GB then. DTKFS_BIGTREE_FILES=100000 DTKFS_BENCH_ROUNDS=1: a
# one-minute smoke run.
# Environment: DTKFS_BENCH_DIR (default /var/tmp/dtkfs-bench; scratch in its bigtree/, a
#              loop-mounted ext4 of DTKFS_BENCH_DISK bytes, default 16G, sparse, with inodes
#              for the tree),
#              DTKFS_BENCH_ROUNDS (default 3): rounds of the peer comparison (the three
#              targets rotate in each); the rest runs once,
#              DTKFS_BIGTREE_FILES (default 10000000): files of the tree, 10 per directory
#              (at least 100000; 100000 is a smoke run),
#              DTKFS_BENCH_WRITE: 1 writes the section, 0 only prints it (default: 1 only
#              when DTKFS_BIGTREE_FILES is the default),
#              DTKFS_BENCH_REF: measure this commit instead of the working tree (exported
#              with git archive and built, dtkfs only, in $DTKFS_BENCH_DIR/bigtree-build;
#              kept there and used again while the commit is the same),
#              DTKFS_BENCH_BINARY: measure this dtkfs binary (built elsewhere; nothing is
#              built), DTKFS_BENCH_COMMIT: what to call it in the section.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh bench
WORK=${DTKFS_BENCH_DIR:-/var/tmp/dtkfs-bench}/bigtree
if [[ -n ${DTKFS_BENCH_BINARY:-} ]]; then
  BINARY=$DTKFS_BENCH_BINARY
  export DTKFS_BENCH_COMMIT=${DTKFS_BENCH_COMMIT:-"the binary \`$BINARY\` (working tree at \`$(git rev-parse --short HEAD)\`)"}
elif [[ -n ${DTKFS_BENCH_REF:-} ]]; then
  BUILT=$WORK-build
  COMMIT=$(git rev-parse "$DTKFS_BENCH_REF^{commit}")
  if [[ ! -x $BUILT/build/dtkfs || $(cat "$BUILT/commit" 2>/dev/null) != "$COMMIT" ]]; then
    rm -rf "$BUILT" && mkdir -p "$BUILT/src"
    git archive "$COMMIT" | tar -x -C "$BUILT/src"
    cmake -S "$BUILT/src" -B "$BUILT/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILT/build" -j"$(nproc)" --target dtkfs >/dev/null
    echo "$COMMIT" >"$BUILT/commit"
  fi
  BINARY=$BUILT/build/dtkfs
  export DTKFS_BENCH_COMMIT
  DTKFS_BENCH_COMMIT="\`$(git rev-parse --short "$DTKFS_BENCH_REF^{commit}")\` (git archive of it)"
else
  ./scripts/build.sh >/dev/null
  BINARY=build/dtkfs
fi
FILES=${DTKFS_BIGTREE_FILES:-10000000}
# Inodes for the files, their directories (one per 10 files and ~1% more above them) and the
# index's own files; the default (one per 16 KiB) gives a 16G disk only 1M. The inode tables
# are zeroed by mkfs (cheap on a sparse file), not by ext4lazyinit in the background while
# the walks are timed.
source bench/scratch_fs.sh
scratch_fs -N $((FILES + FILES / 9 + 100000)) -E lazy_itable_init=0
# Unmount what the driver may have left mounted on the scratch filesystem (it unmounts its
# own mounts; this is for a driver killed hard), then the scratch filesystem itself.
cleanup() {
  { findmnt -rn -o TARGET | grep -F "$WORK/" || true; } | while read -r m; do
    fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" || true
  done
  umount "$WORK" 2>/dev/null || umount -l "$WORK" || true
  rm -f "$WORK.img"
}
trap cleanup EXIT
# The binary as built now: a rebuild during the run must not change it under the benchmark.
cp "$BINARY" "$WORK/dtkfs"
python3 -B bench/bigtree_bench.py "$PWD" "$WORK/dtkfs" "$WORK" "${DTKFS_BENCH_ROUNDS:-3}" "$FILES"
