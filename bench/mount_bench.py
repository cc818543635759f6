#!/usr/bin/env python3
"""The mount benchmark (issue "dtkfs mount"), side by side in one run. Run it through
bench/mount_bench.sh, which installs the peers and builds first.

  1. Three common workloads on native ext4, bindfs --multithreaded, mergerfs and dtkfs,
     alternating the targets in every round: extract the linux-source-6.1 tarball
     (uncompressed beforehand), walk the extracted tree (`du -sb`), remove it (`rm -rf`).
  2. `getfattr -n user.total_bytes` of the extracted root on dtkfs vs `du -sb` of it.
  3. The getxattr round trip, in process (bench/xattr_bench): dtkfs's size attribute, a
     passed-through attribute on dtkfs, bindfs and mergerfs, and native for reference.
  4. Mount time of a 100k-file tree: the first mount (scan) vs a mount from the index.

Writes the section between the mount-bench markers of docs/benchmarks.md.
Arguments: REPO BUILD_DIR WORK_DIR TARBALL ROUNDS [PART...]
PARTS: top-level directories of the kernel tree to extract (default: all of it).
"""
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import out, run, timed, tree_bytes, write_section  # noqa: E402

REPO, BUILD, WORK, TARBALL, ROUNDS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
PARTS = sys.argv[6:]
DTKFS = os.path.join(BUILD, "dtkfs")
XATTR_BENCH = os.path.join(BUILD, "bench", "xattr_bench")
TARGETS = ["native", "bindfs", "mergerfs", "dtkfs"]
mounted = []


def unmount_all():
    for m in reversed(mounted):
        if m.endswith("/dtkfs"):
            subprocess.run([DTKFS, "umount", m], stderr=subprocess.DEVNULL)
        if os.path.ismount(m):
            if subprocess.run(["fusermount3", "-u", m], stderr=subprocess.DEVNULL).returncode:
                subprocess.run(["fusermount3", "-u", "-z", m])
    mounted.clear()


def main():
    os.makedirs(WORK, exist_ok=True)  # mount_bench.sh mounts a fresh ext4 here
    for d in ["native", "bindfs-src", "bindfs", "mergerfs-src", "mergerfs", "dtkfs-src", "dtkfs", "state"]:
        os.makedirs(os.path.join(WORK, d))
    os.environ["XDG_STATE_HOME"] = os.path.join(WORK, "state")
    tar = os.path.join(WORK, "linux.tar")
    with open(tar, "wb") as f:
        run(["xz", "-dc", TARBALL], stdout=f)
    if PARTS:  # a tarball of just those parts, so tar does not skip through the rest
        stage = os.path.join(WORK, "stage")
        os.makedirs(stage)
        run(["tar", "-xf", tar, "-C", stage] + [f"linux-source-6.1/{p}" for p in PARTS])
        run(["tar", "-cf", tar, "-C", stage, "linux-source-6.1"])
        run(["rm", "-rf", stage])
    entries = int(out(["sh", "-c", f"tar -tf {tar} | wc -l"]))

    path = {t: os.path.join(WORK, t) for t in TARGETS}
    run(["bindfs", "--multithreaded", path["bindfs"] + "-src", path["bindfs"]])
    mounted.append(path["bindfs"])
    run(["mergerfs", "-o", "cache.files=off", path["mergerfs"] + "-src", path["mergerfs"]])
    mounted.append(path["mergerfs"])
    run([DTKFS, "mount", path["dtkfs"] + "-src", path["dtkfs"]])
    mounted.append(path["dtkfs"])

    workloads = {
        "extract (tar -x)": lambda d: ["tar", "-xf", tar, "-C", d],
        "walk (du -sb)": lambda d: ["du", "-sb", os.path.join(d, "linux-source-6.1")],
        "remove (rm -rf)": lambda d: ["rm", "-rf", os.path.join(d, "linux-source-6.1")],
    }
    times = {w: {t: [] for t in TARGETS} for w in workloads}
    exact = []
    for r in range(ROUNDS):
        order = TARGETS[r % 4:] + TARGETS[:r % 4]  # rotate, so no target always goes first
        for w, argv in workloads.items():
            for t in order:
                times[w][t].append(timed(argv(path[t])))
            if w.startswith("extract"):
                root = os.path.join(path["dtkfs"], "linux-source-6.1")
                got = int(out(["getfattr", "--only-values", "-n", "user.total_bytes", root]))
                exact.append(got == tree_bytes(os.path.join(WORK, "dtkfs-src", "linux-source-6.1")))
        print(f"mount_bench: round {r + 1}/{ROUNDS} done", file=sys.stderr)

    # 2 and 3 on a tree that stays: extract once more everywhere.
    for t in TARGETS:
        run(["tar", "-xf", tar, "-C", path[t]])
    root = os.path.join(path["dtkfs"], "linux-source-6.1")
    with open(os.path.join(WORK, "workloads.json"), "w") as f:  # kept if a later step fails
        json.dump(times, f, indent=1)
    getfattr = [timed(["getfattr", "--absolute-names", "-n", "user.total_bytes", root])
                for _ in range(30)]
    du = [timed(["du", "-sb", root]) for _ in range(10)]
    value = int(out(["getfattr", "--only-values", "-n", "user.total_bytes", root]))
    reference = tree_bytes(os.path.join(WORK, "dtkfs-src", "linux-source-6.1"))

    # A regular file of the extracted tree, the same on every target.
    native_root = os.path.join(path["native"], "linux-source-6.1")
    probe = next(os.path.relpath(os.path.join(dp, f), path["native"])
                 for dp, _, files in sorted(os.walk(native_root)) for f in sorted(files)
                 if os.path.isfile(os.path.join(dp, f)) and not os.path.islink(os.path.join(dp, f)))
    for src in [path["native"], path["bindfs"] + "-src", path["mergerfs"] + "-src", path["dtkfs"] + "-src"]:
        run(["setfattr", "-n", "user.bench", "-v", "x" * 16, os.path.join(src, probe)])

    def xattr(p, name):
        res = dict(l.split() for l in out([XATTR_BENCH, p, name]).splitlines())
        return float(res["getxattr_median_ns"]) / 1000, float(res["getxattr_min_ns"]) / 1000

    rt = {
        "dtkfs: user.total_bytes of the tree's root": xattr(root, "user.total_bytes"),
        "dtkfs: user.bench of a file (passed through)": xattr(os.path.join(path["dtkfs"], probe), "user.bench"),
        "mergerfs: user.mergerfs.basepath of a file (answered by mergerfs)":
            xattr(os.path.join(path["mergerfs"], probe), "user.mergerfs.basepath"),
        "mergerfs: user.bench of a file (passed through)": xattr(os.path.join(path["mergerfs"], probe), "user.bench"),
        "bindfs: user.bench of a file (passed through)": xattr(os.path.join(path["bindfs"], probe), "user.bench"),
        "native ext4: user.bench of a file": xattr(os.path.join(path["native"], probe), "user.bench"),
    }
    unmount_all()

    # 4: mount time of a 100k-file tree.
    t100 = os.path.join(WORK, "tree100k")
    src, mnt, idx = os.path.join(t100, "src"), os.path.join(t100, "mnt"), os.path.join(t100, "idx")
    os.makedirs(mnt)
    for d in range(1000):
        p = os.path.join(src, f"d{d // 100}", f"e{d}")
        os.makedirs(p)
        for f in range(100):
            with open(os.path.join(p, f"f{f}"), "wb") as fh:
                fh.write(b"x" * (f * 37 % 4096))
    first, again = [], []
    for _ in range(ROUNDS):
        for fresh in (True, False):
            if fresh and os.path.exists(idx):
                os.unlink(idx)
            mounted.append(mnt)
            (first if fresh else again).append(timed([DTKFS, "mount", src, mnt, "--index", idx]))
            run([DTKFS, "umount", mnt])
            mounted.clear()

    ms = lambda v: statistics.median(v) * 1000
    best = lambda v: min(v) * 1000
    s = ["<!-- mount-bench:begin (generated by bench/mount_bench.sh; edits here are overwritten) -->",
         "## Mount: passthrough workloads, size queries, getxattr, mount time", ""]
    head = out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).strip()
    dirty = " with uncommitted changes" if out(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"]).strip() else ""
    load = open("/proc/loadavg").read().split()[:3]
    versions = out(["bindfs", "--version"]).split("\n")[0] + "; " + out(["mergerfs", "--version"]).split("\n")[0]
    s += [f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit `{head}`{dirty}. "
          f"{os.cpu_count()} cores, Linux {platform.release()}; {versions}; load average at the end "
          f"{' '.join(load)}. {ROUNDS} rounds; in each round every workload runs on every target, the "
          "targets in rotated order. bindfs runs with `--multithreaded`, mergerfs with "
          "`cache.files=off` (not its default, which is `cache.files=libfuse`), dtkfs with its "
          "defaults. Every tree, native or under a mount, is on one fresh journaled ext4 in a loop file.", ""]
    what = (f"the directories {', '.join(PARTS)} of the Linux 6.1 source tarball" if PARTS
            else "the Linux 6.1 source tarball")
    s += [f"### Workloads ({what}, uncompressed: {entries:,} entries)", "",
          "Median seconds (best in parentheses), and the ratio of each to native ext4 and to the faster "
          "of bindfs and mergerfs (below 1.00x: dtkfs is faster).", "",
          "| workload | native | bindfs | mergerfs | dtkfs | dtkfs / native | dtkfs / faster peer (median) | (best) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for w, by in times.items():
        med = {t: statistics.median(v) for t, v in by.items()}
        mn = {t: min(v) for t, v in by.items()}
        peer_med = min(med["bindfs"], med["mergerfs"])
        peer_min = min(mn["bindfs"], mn["mergerfs"])
        cells = " | ".join(f"{med[t]:.2f} ({mn[t]:.2f})" for t in TARGETS)
        s.append(f"| {w} | {cells} | {med['dtkfs'] / med['native']:.2f}x | "
                 f"{med['dtkfs'] / peer_med:.2f}x | {mn['dtkfs'] / peer_min:.2f}x |")
    s += ["", f"After every extraction on dtkfs, `user.total_bytes` of the extracted root equalled a "
          f"walk of the source: {sum(exact)} of {len(exact)} times.", ""]
    s += ["### Size of the extracted tree on the dtkfs mount", "",
          "| command | median | best |", "|---|---:|---:|",
          f"| `getfattr -n user.total_bytes ROOT` | {ms(getfattr):.2f} ms | {best(getfattr):.2f} ms |",
          f"| `du -sb ROOT` | {ms(du):.1f} ms | {best(du):.1f} ms |", "",
          f"`getfattr` answers {ms(du) / ms(getfattr):.0f}x faster than `du -sb` (medians; "
          f"{best(du) / best(getfattr):.0f}x from the best runs), and it is mostly the getfattr "
          f"process starting. Its value, {value:,}, "
          f"{'equals' if value == reference else 'DIFFERS FROM'} the walk of the source ({reference:,}).", ""]
    s += ["### getxattr round trip", "",
          "`bench/xattr_bench PATH NAME`: getxattr(2) on a path in a loop, 25 batches of 2,000 calls; "
          "per call, median batch and best batch.", "",
          "| attribute | median µs | best µs |", "|---|---:|---:|"]
    for k, (m, b) in rt.items():
        s.append(f"| {k} | {m:.1f} | {b:.1f} |")
    s += ["", "### Mount time of a 100k-file tree (1,000 directories of 100 files)", "",
          "Time until `dtkfs mount` returns with the mount ready (it daemonises after mounting).", "",
          "| mount | median | best |", "|---|---:|---:|",
          f"| first mount: scan + index write | {ms(first):.0f} ms | {best(first):.0f} ms |",
          f"| mount from the index (map, validate, no scan) | {ms(again):.0f} ms | {best(again):.0f} ms |", "",
          "Raw timings: `$DTKFS_BENCH_DIR/mount/results.json`.",
          "<!-- mount-bench:end -->"]
    section = "\n".join(s) + "\n"
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump({"workloads": times, "getfattr": getfattr, "du": du, "xattr_us": rt,
                   "first_mount": first, "index_mount": again}, f, indent=1)
    write_section(REPO, "mount-bench", section)
    print(section)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the mounts are cleaned up
signal.signal(signal.SIGINT, lambda *_: sys.exit(1))
try:
    main()
finally:
    unmount_all()
