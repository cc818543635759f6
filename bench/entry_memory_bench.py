#!/usr/bin/env python3
"""Daemon memory per kernel-known inode (issue "big trees", item 2): how much a walk through
the mount grows the dtkfs daemon's RSS, per entry walked, and whether FORGET gives it back.
About 10 s a run; no scratch filesystem, no peers (bench/bigtree_bench.sh is the big run).

  tree  (made once in DIR/src-NAMES-LINKS, kept while its shape is the same): 10 directories
        of 50 directories of 97 empty files and LINKS more names each (default 2: 50,011
        entries with the root). The extra names of a leaf directory are hard links to the first
        file of other leaves, so with LINKS=2 those 500 files have 3 names (pinned by the
        daemon: they stay known after the kernel forgets them). With --names mixed (the
        default) every fourth file name and every link name is 48 bytes long (past
        std::string's 15-byte inline buffer), the others 2 or 3 bytes; --names short: all short.
  run   (--runs times, each on a fresh daemon): `prlimit --nofile=N:N dtkfs mount SRC MNT
        --index FRESH` (N = --nofile, default 1024 as in the big-trees benchmark: a descriptor
        budget of 512, so nearly every inode is evicted once and keeps its file handle, as in a
        tree of millions; no index yet: the mount command scans, and the daemon starts after
        it knowing nothing); the
        daemon's VmRSS (pid from `dtkfs status MNT`) once it stopped moving; `find MNT -printf
        '%s\\n'` (a stat of every entry: every name looked up), counting the lines = entries
        walked; VmRSS again; (after - before) / entries. `inodes:` of `dtkfs status` (binaries
        that have it) must then be every inode of the tree: when it is not, the kernel forgot
        some during the walk (another process dropped the caches) and the run is done again.
        Then, as root, `sync; echo 3 > /proc/sys/vm/drop_caches`, so the kernel forgets the
        inodes (FORGET), and VmRSS once it stopped falling; then `dtkfs umount`.

Prints one line per run and the median; nothing is written into docs/benchmarks.md.
Usage: python3 -B bench/entry_memory_bench.py [--binary build/dtkfs] [--runs 3]
       [--names mixed|short] [--links 2] [--nofile 1024] [--dir $DTKFS_BENCH_DIR/entry-memory]
(DTKFS_BENCH_DIR defaults to /var/tmp/dtkfs-bench.)
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import dtkfs_status, force_unmount, run  # noqa: E402

GROUPS, LEAVES, FILES = 10, 50, 97  # LEAVES per group, FILES per leaf
LONG = 48  # bytes of a long name
TRIES = 3  # walks a run may take when the kernel forgot inodes during one


def name(stem, long):
    return stem + "-" + "n" * (LONG - len(stem) - 1) if long else stem


def leaf(k):
    return f"g{k // LEAVES}/d{k % LEAVES:02d}"


def make_tree(src, names, links):
    """The tree (see the top); returns (entries, inodes), the root included in both."""
    shape = f"{GROUPS} {LEAVES} {FILES} {links} {names} {LONG}"
    leaves = GROUPS * LEAVES
    counts = (1 + GROUPS + leaves + leaves * (FILES + links), 1 + GROUPS + leaves + leaves * FILES)
    marker = src + ".shape"
    if os.path.isdir(src) and os.path.exists(marker) and open(marker).read() == shape:
        return counts
    shutil.rmtree(src, ignore_errors=True)
    mixed = names == "mixed"
    for k in range(leaves):
        d = os.path.join(src, leaf(k))
        os.makedirs(d)
        for i in range(FILES):
            p = os.path.join(d, name(f"f{i}", mixed and i % 4 == 3))
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
    for k in range(leaves):
        for j in range(1, links + 1):
            target = os.path.join(src, leaf((k + j * 7) % leaves), "f0")
            os.link(target, os.path.join(src, leaf(k), name(f"l{j}", mixed)))
    open(marker, "w").write(shape)
    return counts


def vm_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def settled_rss(pid, falling=False, timeout=10.0):
    """VmRSS once two reads 0.5 s apart agree (falling: once it stops going down)."""
    last = vm_rss(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = vm_rss(pid)
        if now == last or (falling and now > last):
            return now
        last = now
    return last


def table_inodes(binary, mnt):
    """`inodes:` of `dtkfs status` (the table's inodes, the root not counted), or None."""
    v = dtkfs_status(binary, mnt).get("inodes")
    return None if v is None else int(v)


def walk(mnt):
    p = subprocess.run(["find", mnt, "-printf", "%s\n"], check=True, capture_output=True)
    return p.stdout.count(b"\n")


def one_run(binary, nofile, src, mnt, index, entries, inodes):
    """A dict of what one run measured, or None when the kernel forgot during the walk."""
    shutil.rmtree(os.path.dirname(index), ignore_errors=True)  # no index: a fresh scan
    os.makedirs(os.path.dirname(index))
    os.makedirs(mnt, exist_ok=True)
    run(["prlimit", f"--nofile={nofile}:{nofile}", binary, "mount", src, mnt, "--index", index],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    r = {}
    try:
        pid = int(dtkfs_status(binary, mnt)["pid"])
        r["before"] = settled_rss(pid)
        walked = walk(mnt)
        if walked != entries:
            raise RuntimeError(f"walked {walked} entries, the tree has {entries}")
        r["after"] = settled_rss(pid)
        r["known"] = table_inodes(binary, mnt)
        if r["known"] is not None and r["known"] != inodes - 1:
            return None
        if os.geteuid() == 0:
            run(["sync"])
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            r["forgot"] = settled_rss(pid, falling=True)
            r["known_after_drop"] = table_inodes(binary, mnt)
    finally:
        if subprocess.run([binary, "umount", mnt], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            force_unmount(mnt)
    return r


def kib(b):
    return f"{b / 1024:,.0f} KiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default="build/dtkfs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--names", choices=("mixed", "short"), default="mixed")
    ap.add_argument("--links", type=int, default=2, help="extra names per leaf directory")
    ap.add_argument("--nofile", type=int, default=1024, help="the daemon's RLIMIT_NOFILE")
    ap.add_argument("--dir", default=os.path.join(
        os.environ.get("DTKFS_BENCH_DIR", "/var/tmp/dtkfs-bench"), "entry-memory"))
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    src = os.path.join(a.dir, f"src-{a.names}-{a.links}")
    mnt = os.path.join(a.dir, "mnt")
    index = os.path.join(a.dir, "index", "tree.dtkidx")
    entries, inodes = make_tree(src, a.names, a.links)
    per = []
    for n in range(a.runs):
        for _ in range(TRIES):
            r = one_run(binary, a.nofile, src, mnt, index, entries, inodes)
            if r is not None:
                break
            print(f"run {n + 1}: the kernel forgot inodes during the walk; again", flush=True)
        else:
            raise RuntimeError(f"the kernel forgot inodes during {TRIES} walks")
        growth = r["after"] - r["before"]
        per.append(growth / entries)
        line = (f"run {n + 1}: {entries:,} entries ({inodes:,} inodes; {a.names} names), VmRSS "
                f"{kib(r['before'])} -> {kib(r['after'])}: {per[-1]:.0f} B/entry")
        if "forgot" in r:
            line += (f"; after drop_caches {kib(r['forgot'])}, "
                     f"{(r['after'] - r['forgot']) / max(1, growth):.0%} of the growth given back")
            if r["known_after_drop"] is not None:
                line += f" ({r['known_after_drop']:,} inodes still in the table)"
        print(line, flush=True)
    print(f"median: {statistics.median(per):.0f} B/entry over {a.runs} runs "
          f"({', '.join(f'{p:.0f}' for p in per)})")


if __name__ == "__main__":
    main()
