#!/usr/bin/env bash
# Installs, builds, then runs the main job. With no arguments it makes a demo tree, scans
# it and shows its sizes; with SRC it scans SRC.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
DTKFS=./build/dtkfs
if [[ $# -eq 0 ]]; then
  demo=$(mktemp -d /tmp/dtkfs-demo.XXXXXX)
  mkdir -p "$demo/src/photos/2024" "$demo/src/docs" "$demo/src/code/lib"
  head -c 3000000 /dev/urandom >"$demo/src/photos/2024/beach.jpg"
  head -c 1200000 /dev/urandom >"$demo/src/photos/portrait.png"
  printf 'hello dtkfs\n' >"$demo/src/docs/readme.txt"
  head -c 45000 /dev/zero >"$demo/src/code/lib/lib.a"
  export XDG_STATE_HOME="$demo/state"
  set -- "$demo/src"
  echo "demo tree in $demo/src (index under $XDG_STATE_HOME)"
fi
SRC=$1
"$DTKFS" scan "$SRC"
"$DTKFS" du -h "$SRC"
"$DTKFS" top -h -n 5 "$SRC"
