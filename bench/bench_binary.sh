# Sourced by the benchmark scripts (bench/run.sh, bench/journal_bench.sh): the dtkfs binary to
# measure, and the cleanup trap. Call `bench_binary NAME` with BENCH_DIR and WORK set; it sets
# BINARY to a copy in $BENCH_DIR/NAME-bin (a rebuild during the run must not change it under
# the benchmark) and exports DTKFS_BENCH_COMMIT (how the section names it). Which binary:
#   DTKFS_BENCH_BINARY   this one (nothing is built)
#   DTKFS_BENCH_REF      a Release build of this commit (git archive of it)
#   otherwise            a Release build of the working tree, in build-bench/
bench_binary() {
  local name=$1 built
  export DTKFS_BENCH_COMMIT
  if [[ -n ${DTKFS_BENCH_BINARY:-} ]]; then
    BINARY=$DTKFS_BENCH_BINARY
    DTKFS_BENCH_COMMIT="\`$("$BINARY" --version | head -1)\` (a given binary)"
  elif [[ -n ${DTKFS_BENCH_REF:-} ]]; then
    built=$BENCH_DIR/$name-build
    rm -rf "$built" && mkdir -p "$built/src"
    git archive "$DTKFS_BENCH_REF" | tar -x -C "$built/src"
    cmake -S "$built/src" -B "$built/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$built/build" -j"$(nproc)" --target dtkfs >/dev/null
    BINARY=$built/build/dtkfs
    DTKFS_BENCH_COMMIT="\`$(git rev-parse --short "$DTKFS_BENCH_REF^{commit}")\` (git archive of it)"
  else
    ./scripts/deps.sh >/dev/null
    cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build-bench -j"$(nproc)" --target dtkfs >/dev/null
    BINARY=build-bench/dtkfs
    DTKFS_BENCH_COMMIT="\`$(git rev-parse --short HEAD)\`"
    if [[ -n $(git status --porcelain --untracked-files=no -- src include CMakeLists.txt) ]]; then
      DTKFS_BENCH_COMMIT+=" with uncommitted changes"
    fi
  fi
  mkdir -p "$BENCH_DIR/$name-bin"
  cp "$BINARY" "$BENCH_DIR/$name-bin/dtkfs"
  BINARY=$BENCH_DIR/$name-bin/dtkfs
  trap bench_cleanup EXIT
}

# If the driver dies without its own cleanup: unmount what is left under $WORK, FUSE first
# (lazily: a killed daemon's mount may hang), then the loop filesystems.
bench_cleanup() {
  findmnt -rn -o TARGET | grep -F "$WORK/" | sort -r | while read -r m; do
    fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null ||
      umount "$m" 2>/dev/null || umount -l "$m"
  done || true
}
