#!/usr/bin/env bash
# Fails when a C++ file differs from .clang-format (clang-format 14, Debian 12's). Fix with:
#   clang-format -i $(git ls-files '*.cc' '*.h')
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cc' '*.h')
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/dtkfs-format.$$; then
  grep -m 20 "error:" /tmp/dtkfs-format.$$ >&2 || true
  rm -f /tmp/dtkfs-format.$$
  echo "check-format: files differ from .clang-format (see above); run clang-format -i" >&2
  exit 1
fi
rm -f /tmp/dtkfs-format.$$
echo "check-format: ${#files[@]} files match .clang-format"
