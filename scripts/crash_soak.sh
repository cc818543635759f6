#!/usr/bin/env bash
# The crash loop for hours rather than minutes: runs tests/crash/crash_loop_test.cc again and
# again with many trials each (kill -9 at random moments and at every named kill point, then a
# remount checked against a walk of the source). Stops at the first failure, which prints the
# seed to repeat it with (DTKFS_TEST_SEED=... build/dtkfs_tests "[#crash_loop_test]").
# Usage: scripts/crash_soak.sh [RUNS [TRIALS_PER_RUN]]   (defaults: 10 runs of 100 trials)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
trials=${2:-100}
./scripts/build.sh >/dev/null
for ((i = 1; i <= runs; i++)); do
  echo "crash soak: run $i of $runs ($trials random kills + every kill point)"
  DTKFS_REQUIRE_FUSE=1 DTKFS_CRASH_TRIALS=$trials \
    build/dtkfs_tests --filenames-as-tags "[#crash_loop_test]"
done
echo "crash soak: $runs runs passed"
