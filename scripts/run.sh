#!/usr/bin/env bash
# Installs, builds, then runs the main job: mounts a dtkfs.
#   ./scripts/run.sh            makes a demo tree, mounts it, shows getfattr before and
#                               after a write, and says how to unmount
#   ./scripts/run.sh SRC MNT    mounts SRC at MNT (a daemon; `dtkfs umount MNT` ends it)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
DTKFS=$PWD/build/dtkfs

if [[ $# -eq 2 ]]; then
  "$DTKFS" mount "$1" "$2"
  echo "mounted $1 at $2: try  getfattr -n user.total_bytes $2"
  echo "unmount with:  $DTKFS umount $2"
  exit 0
fi
if [[ $# -ne 0 ]]; then
  echo "usage: $0 [SRC MNT]" >&2
  exit 2
fi

demo=$(mktemp -d /tmp/dtkfs-demo.XXXXXX)
mkdir -p "$demo/src/photos/2024" "$demo/src/docs" "$demo/src/code/lib" "$demo/mnt"
head -c 3000000 /dev/urandom >"$demo/src/photos/2024/beach.jpg"
head -c 1200000 /dev/urandom >"$demo/src/photos/portrait.png"
printf 'hello dtkfs\n' >"$demo/src/docs/readme.txt"
head -c 45000 /dev/zero >"$demo/src/code/lib/lib.a"
export XDG_STATE_HOME="$demo/state"  # keep the demo's index beside it

echo "== dtkfs mount $demo/src $demo/mnt"
"$DTKFS" mount "$demo/src" "$demo/mnt"
echo "== getfattr -n user.total_bytes $demo/mnt/photos"
getfattr --absolute-names -n user.total_bytes "$demo/mnt/photos"
echo "== write 500000 bytes into photos/2024/new.raw through the mount"
head -c 500000 /dev/zero >"$demo/mnt/photos/2024/new.raw"
getfattr --absolute-names -n user.total_bytes "$demo/mnt/photos"
echo "== dtkfs du -h and dtkfs top on the mount (live)"
"$DTKFS" du -h "$demo/mnt" "$demo/mnt/photos"
"$DTKFS" top -n 3 "$demo/mnt"
echo
echo "The mount stays up. Unmount (waits for the final compaction) with:"
echo "  XDG_STATE_HOME=$demo/state $DTKFS umount $demo/mnt && rm -rf $demo"
