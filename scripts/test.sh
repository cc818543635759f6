#!/usr/bin/env bash
# Installs what is missing, checks the C++ formatting (.clang-format), builds, and runs every
# test: the Catch2 suite, one ctest entry per area (unit and end-to-end; FUSE tests fail
# rather than skip when DTKFS_REQUIRE_FUSE=1), and a bounded libFuzzer run of every on-disk
# reader.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh test
./scripts/check-format.sh
./scripts/build.sh
(cd build && ctest --output-on-failure)

if command -v clang++ >/dev/null; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DDTKFS_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target index_reader_fuzz
  corpus=$(mktemp -d)
  trap 'rm -rf "$corpus"' EXIT
  # Seeds: real indexes of small trees.
  mkdir -p "$corpus/tree/a/b" "$corpus/tree/c d"
  echo hi >"$corpus/tree/a/f"; ln -s f "$corpus/tree/a/l"; echo x >"$corpus/tree/c d/g"
  ln "$corpus/tree/a/f" "$corpus/tree/c d/hard"  # a link table record
  ./build/dtkfs scan "$corpus/tree" --index "$corpus/seed1.dtkidx" 2>/dev/null
  ./build/dtkfs scan "$corpus/tree/a" --index "$corpus/seed2.dtkidx" 2>/dev/null
  rm -rf "$corpus/tree" "$corpus"/*.lock
  ./build-fuzz/index_reader_fuzz -max_total_time="${DTKFS_FUZZ_SECONDS:-30}" \
    -max_len=65536 "$corpus" 2>&1 | tail -n 3
else
  echo "test.sh: clang++ missing: fuzzing skipped" >&2
  exit 1
fi
echo "test.sh: all tests passed"
