# Sourced by the mount benchmarks: a fresh journaled ext4 in a loop file at $WORK (mkfs
# options in the arguments), after unmounting what an interrupted run left there; the EXIT
# trap removes it. Every tree of a benchmark lives on it: one filesystem for all targets,
# the common ext4 setup. (On an ext4 without a journal, the inode allocator skips inodes
# freed in the last minutes, so an extraction right after a removal is many times slower
# and the figures measure that instead of the FUSE layer.)
scratch_fs() {
  if [[ -d $WORK ]]; then
    { findmnt -rn -o TARGET | grep -F "$WORK/" || true; } | while read -r m; do
      fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m"
    done
  fi
  if mountpoint -q "$WORK"; then umount "$WORK"; fi
  rm -rf "$WORK" "$WORK.img"
  mkdir -p "$WORK"
  truncate -s "${DTKFS_BENCH_DISK:-16G}" "$WORK.img"
  mkfs.ext4 -q -F "$@" "$WORK.img"
  mount -o loop "$WORK.img" "$WORK"
  trap 'umount "$WORK" 2>/dev/null || umount -l "$WORK"; rm -f "$WORK.img"' EXIT
}
