#!/usr/bin/env python3
"""The journal benchmark (issue 13, "Measure" and the timing half of its "Cost" test): what
the write-intent journal costs on the write path, and what it saves after a crash. Run it
through bench/journal_bench.sh, which builds dtkfs (Release) first.

  1. Write path, `-o journal=on` against `-o journal=off`, both mounted for the whole run,
     each on its own fresh journaled ext4 in a loop file (source and index on it: a fanotify
     mark covers a whole filesystem, and the journal's fsyncs go to the disk the index is on),
     the two in alternating order in every round, `sync` before every timed step:
       - extract the kernel subset (`tar -x` of an uncompressed tarball of some top-level
         directories of linux-source-6.1) where the last round's copy was removed (round 1:
         the empty mount), then `dtkfs compact` (not
         timed: the new directories enter the index, a new journal generation begins);
       - the same extraction again over that tree (every directory is now in the index, so
         each one's first change is journalled), then `rm -rf` it (not timed);
       - a sequential write, `dd bs=1M count=SEQ_MIB conv=fsync` of one file, then rm.
     After each, the journal's records and syncs of that workload (the difference of the
     `journal:` line of `dtkfs status` before and after).
  2. Recovery, on generated trees (FILES files, PER_DIR per leaf directory, 100 leaves per
     parent; the first file of a leaf has 1 to 1,000 bytes, the rest are empty), each on its
     own loop ext4 with the index beside the source. In every round, in rotated order:
       - scan: `dtkfs scan SRC --index OTHER` with a cold cache (sync, drop_caches), timed;
       - for N in CHANGES (capped at the leaf count) and for journal=on and off: mount
         (`-o journal=X,verify=off --compact-interval 0`, so every change is still in the
         journal and the overlay at the crash), append one byte to the first file of N leaves
         spread over the tree through the mount (8 threads), kill -9 the daemon, wait until
         it is gone, abort its FUSE connection, `fusermount3 -uz`, sync, drop caches, and time
         `dtkfs mount SRC MNT -o journal=X` (defaults otherwise) until it returns. The status
         `recovery:` line gives what recovery did; the root's user.total_bytes is checked
         against the bytes known to be there; then `dtkfs umount` (clean: no journal left).
     The ratio remount / scan uses the medians.

Writes the section between the journal-bench markers of docs/benchmarks.md (unless
DTKFS_BENCH_WRITE=0). Raw results: WORK_DIR/results.json (everything else under WORK_DIR is
removed at the end).
Arguments: REPO DTKFS_BINARY WORK_DIR TARBALL ROUNDS
Environment:
  DTKFS_BENCH_PARTS     top-level directories of the kernel subset (default "fs include lib
                        kernel net mm", as bench/run.sh)
  DTKFS_BENCH_SEQ_MIB   sequential write size (default 1024)
  DTKFS_BENCH_ONLY      "write", "recovery" or both (default "write recovery")
  DTKFS_JOURNAL_TREES   trees for recovery, FILES:PER_DIR each (default
                        "200000:100 1000000:10": 2,000 and 100,000 leaf directories)
  DTKFS_JOURNAL_CHANGES changed directories (default "10 100 1000 100000")
  DTKFS_JOURNAL_RECOVERY_ROUNDS  rounds of part 2 (default 3)
  DTKFS_BENCH_DISK      size of each loop file (default 16G, sparse)
  DTKFS_BENCH_COMMIT    how the section names the measured binary (journal_bench.sh sets it)
  DTKFS_BENCH_WRITE     0: print the section only
"""
import concurrent.futures
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
from benchlib import (clean_leftovers, dtkfs_status, force_unmount, loadavg, out, run,  # noqa: E402
                      timed, tree_bytes, write_section)

REPO, DTKFS, WORK, TARBALL = sys.argv[1:5]
ROUNDS = int(sys.argv[5])
PARTS = os.environ.get("DTKFS_BENCH_PARTS", "fs include lib kernel net mm").split()
SEQ_MIB = int(os.environ.get("DTKFS_BENCH_SEQ_MIB", "1024"))
ONLY = os.environ.get("DTKFS_BENCH_ONLY", "write recovery").split()
TREES = [tuple(int(x) for x in t.split(":")) for t in
         os.environ.get("DTKFS_JOURNAL_TREES", "200000:100 1000000:10").split()]
CHANGES = [int(x) for x in os.environ.get("DTKFS_JOURNAL_CHANGES", "10 100 1000 100000").split()]
RROUNDS = int(os.environ.get("DTKFS_JOURNAL_RECOVERY_ROUNDS", "3"))
DISK = os.environ.get("DTKFS_BENCH_DISK", "16G")
COMMIT = os.environ.get("DTKFS_BENCH_COMMIT", "")
WRITE = os.environ.get("DTKFS_BENCH_WRITE", "1") == "1"
TREE = "linux-source-6.1"
LEAVES_PER_PARENT = 100

mounted_fuse = []   # FUSE mount points, unmounted in reverse order
mounted_loop = []   # loop filesystems
T0 = time.monotonic()
LOAD_START = loadavg()


def say(msg):
    print(f"journal_bench {time.strftime('%H:%M:%S')}: {msg}", file=sys.stderr, flush=True)


def drop_caches():
    run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def make_fs(name, inodes=None):
    """A fresh journaled ext4 in a loop file at WORK/name; returns its mount point."""
    fs = os.path.join(WORK, name)
    img = fs + ".img"
    run(["truncate", "-s", DISK, img])
    run(["mkfs.ext4", "-q", "-F"] + (["-N", str(inodes), "-E", "lazy_itable_init=0"] if inodes else []) + [img])
    os.makedirs(fs)
    run(["mount", "-o", "loop", img, fs])
    mounted_loop.append(fs)
    for d in ("src", "mnt", "index"):
        os.makedirs(os.path.join(fs, d))
    return fs


def unmount_all():
    for m in reversed(mounted_fuse):
        if os.path.ismount(m):
            subprocess.run([DTKFS, "umount", m], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        force_unmount(m)
    mounted_fuse.clear()
    for m in reversed(mounted_loop):
        if os.path.ismount(m) and subprocess.run(["umount", m], stderr=subprocess.DEVNULL).returncode:
            subprocess.run(["umount", "-l", m])
    mounted_loop.clear()


def remove_scratch():
    if any(l.split()[1].startswith(WORK + "/") for l in open("/proc/self/mounts")):
        say(f"something is still mounted under {WORK}: its files are left in place")
        return
    for e in os.listdir(WORK) if os.path.isdir(WORK) else []:
        if e != "results.json":
            subprocess.run(["rm", "-rf", os.path.join(WORK, e)])


def mount(fs, opts, index=None, extra=()):
    """`dtkfs mount`; returns (seconds until it returned, its stderr)."""
    mnt = os.path.join(fs, "mnt")
    argv = [DTKFS, "mount", os.path.join(fs, "src"), mnt, "--index", index or os.path.join(fs, "index", "t.dtkidx"),
            "-o", opts] + list(extra)
    mounted_fuse.append(mnt)
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return secs, p.stderr


def umount(fs):
    mnt = os.path.join(fs, "mnt")
    r = subprocess.run([DTKFS, "umount", mnt], capture_output=True, text=True)
    if r.returncode:
        say(f"dtkfs umount {mnt}: exit {r.returncode}: {r.stderr.strip()}")
    force_unmount(mnt)
    if mnt in mounted_fuse:
        mounted_fuse.remove(mnt)


JOURNAL_RE = re.compile(r"generation (\d+), (\d+) records, (\d+) syncs, (\d+) directories")


def journal_counts(mnt):
    """(records, syncs) since the daemon started, from the status `journal:` line."""
    line = dtkfs_status(DTKFS, mnt).get("journal", "")
    m = JOURNAL_RE.search(line)
    return (int(m.group(2)), int(m.group(3))) if m else (0, 0)


# ---- 1. the write path -----------------------------------------------------------------------

def write_path():
    tars = os.path.join(WORK, "tars")
    os.makedirs(tars)
    whole, subset = os.path.join(tars, "linux.tar"), os.path.join(tars, "subset.tar")
    say("uncompressing the kernel tarball")
    with open(whole, "wb") as f:
        run(["xz", "-dc", TARBALL], stdout=f)
    stage = os.path.join(tars, "stage")
    os.makedirs(stage)
    run(["tar", "-xf", whole, "-C", stage] + [f"{TREE}/{p}" for p in PARTS])
    run(["tar", "-cf", subset, "-C", stage, TREE])
    run(["rm", "-rf", stage, whole])
    entries = int(out(["sh", "-c", f"tar -tf {subset} | wc -l"]))

    fs = {j: make_fs(f"fs-{j}") for j in ("on", "off")}
    for j in fs:
        mount(fs[j], f"journal={j}")
    # extract: where the last round's copy was removed (round 1: into the empty mount, one
    # mark); the index still lists the removed directories, so their re-creation is marked;
    # overwrite: the same extraction over the tree the last one left, after `dtkfs compact`
    # put its directories into the index and began a new generation (every directory marked).
    workloads = {
        "extract": (lambda m: ["tar", "-xf", subset, "-C", m], lambda m: [DTKFS, "compact", m]),
        "overwrite": (lambda m: ["tar", "-xf", subset, "-C", m], lambda m: ["rm", "-rf", os.path.join(m, TREE)]),
        "seq": (lambda m: ["dd", "if=/dev/zero", f"of={os.path.join(m, 'seq')}", "bs=1M", f"count={SEQ_MIB}",
                           "conv=fsync", "status=none"], lambda m: ["rm", "-f", os.path.join(m, "seq")]),
    }
    times = {w: {j: [] for j in fs} for w in workloads}
    journal = {w: {j: [] for j in fs} for w in workloads}  # (records, syncs) per run
    exact = []
    for r in range(ROUNDS):
        order = ["on", "off"] if r % 2 == 0 else ["off", "on"]
        for w, (argv, undo) in workloads.items():
            for j in order:
                mnt = os.path.join(fs[j], "mnt")
                before = journal_counts(mnt)
                run(["sync"])
                times[w][j].append(timed(argv(mnt)))
                after = journal_counts(mnt)
                journal[w][j].append((after[0] - before[0], after[1] - before[1]))
                if w in ("extract", "overwrite"):
                    got = int(os.getxattr(os.path.join(mnt, TREE), "user.total_bytes"))
                    exact.append(got == tree_bytes(os.path.join(fs[j], "src", TREE)))
                run(undo(mnt), stdout=subprocess.DEVNULL)
        say(f"write path: round {r + 1}/{ROUNDS}: " + ", ".join(
            f"{w} on {times[w]['on'][-1]:.2f} s off {times[w]['off'][-1]:.2f} s" for w in workloads))
    for j in fs:
        umount(fs[j])
    return {"entries": entries, "times": times, "journal": journal, "exact": exact}


# ---- 2. recovery -----------------------------------------------------------------------------

def leaf_path(k):
    return f"t{k // LEAVES_PER_PARENT:04d}/l{k % LEAVES_PER_PARENT:02d}"


def first_size(k):
    return k % 1000 + 1


def make_leaves(src, files, per_dir, ks):
    for k in ks:
        d = os.path.join(src, leaf_path(k))
        os.mkdir(d)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        fd = os.open("f0", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644, dir_fd=dfd)
        os.ftruncate(fd, first_size(k))
        os.close(fd)
        for f in range(1, min(per_dir, files - k * per_dir)):
            os.mknod(f"f{f}", 0o100644, dir_fd=dfd)
        os.close(dfd)


def make_tree(src, files, per_dir):
    leaves = (files + per_dir - 1) // per_dir
    for p in range((leaves + LEAVES_PER_PARENT - 1) // LEAVES_PER_PARENT):
        os.mkdir(os.path.join(src, f"t{p:04d}"))
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        for f in [ex.submit(make_leaves, src, files, per_dir, range(i, leaves, 2)) for i in range(2)]:
            f.result()
    return leaves, sum(first_size(k) for k in range(leaves))


def append_one_byte(mnt, ks):
    def one(k):
        with open(os.path.join(mnt, leaf_path(k), "f0"), "ab") as f:
            f.write(b"x")
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(one, ks))


def fuse_minor(mnt):
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[4] == mnt:
            return f[2].split(":")[1]
    return None


def crash(mnt, pid):
    """kill -9 the daemon, wait until it is gone, abort its connection, unmount lazily."""
    minor = fuse_minor(mnt)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = [l for l in open(f"/proc/{pid}/status") if l.startswith("State:")][0]
            if "Z" in state.split()[1]:
                break
        except (FileNotFoundError, IndexError, ProcessLookupError):
            break
        time.sleep(0.02)
    conns = "/sys/fs/fuse/connections"
    if minor:
        if not os.listdir(conns):
            subprocess.run(["mount", "-t", "fusectl", "fusectl", conns], stderr=subprocess.DEVNULL)
        try:
            with open(os.path.join(conns, minor, "abort"), "w") as f:
                f.write("1\n")
        except OSError as e:
            say(f"abort of FUSE connection {minor}: {e}")
    run(["fusermount3", "-u", "-z", mnt])
    if mnt in mounted_fuse:
        mounted_fuse.remove(mnt)


RECOVERY_RE = re.compile(r"(\d+) directories reconciled \((\d+) changed, (\d+) scanned whole, (\d+) gone\) in ([\d.]+) s")


def recovery(files, per_dir):
    name = f"tree-{files}"
    fs = make_fs(name, inodes=files + files // per_dir + 100000)
    src, mnt = os.path.join(fs, "src"), os.path.join(fs, "mnt")
    t0 = time.monotonic()
    leaves, base = make_tree(src, files, per_dir)
    dirs = leaves + (leaves + LEAVES_PER_PARENT - 1) // LEAVES_PER_PARENT + 1
    say(f"tree of {files:,} files, {dirs:,} directories made in {time.monotonic() - t0:.0f} s")
    run([DTKFS, "scan", src, "--index", os.path.join(fs, "index", "t.dtkidx")], stdout=subprocess.DEVNULL)
    changes = sorted({min(n, leaves) for n in CHANGES})
    appended = 0  # bytes added through the mount so far
    res = {"files": files, "per_dir": per_dir, "leaves": leaves, "dirs": dirs, "changes": changes,
           "scan": [], "remount": {f"{n}/{j}": [] for n in changes for j in ("on", "off")},
           "change_secs": {f"{n}/{j}": [] for n in changes for j in ("on", "off")},
           "journal": {}, "recovery": {f"{n}/on": [] for n in changes}, "exact": []}
    scan_index = os.path.join(fs, "index", "scan.dtkidx")
    steps = ["scan"] + [(n, j) for n in changes for j in ("on", "off")]
    for r in range(RROUNDS):
        k = r % len(steps)
        for step in steps[k:] + steps[:k]:
            if step == "scan":
                for p in [scan_index] + [os.path.join(fs, "index", e) for e in os.listdir(os.path.join(fs, "index"))
                                         if e.startswith("scan.dtkidx")]:
                    if os.path.exists(p):
                        os.unlink(p)
                drop_caches()
                res["scan"].append(timed([DTKFS, "scan", src, "--index", scan_index]))
                continue
            n, j = step
            key = f"{n}/{j}"
            mount(fs, f"journal={j},verify=off", extra=["--compact-interval", "0"])
            st = dtkfs_status(DTKFS, mnt)
            pid = int(st["pid"])
            before = journal_counts(mnt)
            ks = [i * leaves // n for i in range(n)]  # spread over the tree
            t0 = time.perf_counter()
            append_one_byte(mnt, ks)
            res["change_secs"][key].append(time.perf_counter() - t0)
            appended += n
            after = journal_counts(mnt)
            res["journal"].setdefault(key, []).append((after[0] - before[0], after[1] - before[1]))
            crash(mnt, pid)
            drop_caches()
            secs, err = mount(fs, f"journal={j}")
            res["remount"][key].append(secs)
            st = dtkfs_status(DTKFS, mnt)
            if j == "on":
                m = RECOVERY_RE.search(st.get("recovery", ""))
                res["recovery"][key].append([int(m.group(i)) for i in range(1, 5)] + [float(m.group(5))] if m
                                            else st.get("recovery", ""))
            got = int(os.getxattr(mnt, "user.total_bytes"))
            res["exact"].append(got == base + appended)
            if got != base + appended:
                say(f"PROBLEM: after the crash ({key}) the root says {got:,} bytes, wanted {base + appended:,}")
            umount(fs)
            say(f"{name} round {r + 1}: {n} changed, journal={j}: changes {res['change_secs'][key][-1]:.2f} s, "
                f"remount {secs:.3f} s; recovery: {st.get('recovery')}")
        say(f"{name} round {r + 1}/{RROUNDS}: scan {res['scan'][-1]:.2f} s")
    run(["umount", fs])
    mounted_loop.remove(fs)
    os.unlink(fs + ".img")
    return res


# ---- the section -----------------------------------------------------------------------------

def med(v):
    return statistics.median(v) if v else float("nan")


def section(wp, rec):
    s = ["<!-- journal-bench:begin (generated by bench/journal_bench.sh; edits here are overwritten) -->",
         "## Crash safety: what the write-intent journal costs and saves", ""]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20
    s += [f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, dtkfs {COMMIT} built Release, "
          f"{(time.monotonic() - T0) / 60:.0f} minutes. {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, "
          f"Linux {platform.release()}. Load average at the start {LOAD_START}, at the end {loadavg()} "
          "(a machine shared with other engineers' test suites). How to run: `sudo ./bench/journal_bench.sh` "
          "(environment: see its header). Every tree is on a fresh journaled ext4 in a loop file of its own, "
          "with the index (and its journal) beside the source on the same filesystem.", ""]
    if wp:
        s += [f"### Write path: journal on vs off ({ROUNDS} rounds, alternating)", "",
              f"Both mounts up for the whole run (`-o journal=on`, `-o journal=off`, defaults otherwise), "
              f"each on its own filesystem; in every round each workload runs on both, the order swapped every "
              f"round, `sync` before each. The subset: the directories {', '.join(PARTS)} of the Linux 6.1 "
              f"source tarball, {wp['entries']:,} entries, uncompressed beforehand. Median seconds (best in "
              "parentheses); cost: on / off - 1 (medians; goal: at most 5%). Journal: records and fsyncs of "
              "the journal during one run of the workload (medians), from `dtkfs status`.", "",
              "| workload | journal=on | journal=off | cost (median) | cost (best) | journal records | journal syncs |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        names = {"extract": "extract the subset (`tar -x`) where the last round's copy was just removed",
                 "overwrite": "extract it again over itself, after `dtkfs compact`",
                 "seq": f"sequential write, {SEQ_MIB:,} MiB (`dd bs=1M conv=fsync`)"}
        for w, by in wp["times"].items():
            on, off = by["on"], by["off"]
            recs = med([x[0] for x in wp["journal"][w]["on"]])
            syncs = med([x[1] for x in wp["journal"][w]["on"]])
            cell = (lambda v: f"{med(v):.2f} s ({min(v):.2f})") if w != "seq" else \
                (lambda v: f"{SEQ_MIB / med(v):.0f} MiB/s ({SEQ_MIB / min(v):.0f})")
            s.append(f"| {names[w]} | {cell(on)} | {cell(off)} | {(med(on) / med(off) - 1) * 100:+.1f}% | "
                     f"{(min(on) / min(off) - 1) * 100:+.1f}% | {recs:,.0f} | {syncs:,.0f} |")
        s += ["", f"Every round, each extraction's (both kinds) `user.total_bytes` equalled a walk of the source: "
              f"{sum(wp['exact'])} of {len(wp['exact'])}. With journal=off the journal line counted "
              f"{max(x[0] for v in wp['journal'].values() for x in v['off'])} records at most.", ""]
    for t in rec:
        s += [f"### Recovery after kill -9: {t['files']:,} files in {t['dirs']:,} directories "
              f"({t['per_dir']} files per leaf directory; {RROUNDS} rounds)", "",
              "Per round, in rotated order: a cold-cache `dtkfs scan` of the tree; and for each count of changed "
              "directories and journal=on and off: mount (`verify=off`, no compaction timer), append one byte to "
              "a file in that many leaf directories through the mount (8 threads), kill -9 the daemon, abort its "
              "FUSE connection, `fusermount3 -uz`, drop caches, and time `dtkfs mount` (until it returns, the "
              "mount ready). Reconciled: from the `recovery:` line of `dtkfs status` (directories reconciled, of "
              "them changed). Medians in seconds (best in parentheses).", "",
              f"Full scan, cold cache: **{med(t['scan']):.2f} s** ({min(t['scan']):.2f}).", "",
              "| changed dirs | remount, journal=on | reconciled (changed) | recovery's own time | remount / scan "
              "| remount after the crash, journal=off (rescan) | journal=off / scan | making the changes, on / off |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for n in t["changes"]:
            on, off = t["remount"][f"{n}/on"], t["remount"][f"{n}/off"]
            recs = [x for x in t["recovery"][f"{n}/on"] if isinstance(x, list)]
            rc = (f"{med([x[0] for x in recs]):,.0f} ({med([x[1] for x in recs]):,.0f})" if recs else "?")
            rt = f"{med([x[4] for x in recs]):.3f} s" if recs else "?"
            ch_on, ch_off = med(t["change_secs"][f"{n}/on"]), med(t["change_secs"][f"{n}/off"])
            s.append(f"| {n:,} | {med(on):.3f} ({min(on):.3f}) | {rc} | {rt} | **{med(on) / med(t['scan']):.2f}x** | "
                     f"{med(off):.3f} ({min(off):.3f}) | {med(off) / med(t['scan']):.2f}x | "
                     f"{ch_on:.2f} s / {ch_off:.2f} s |")
        s += ["", f"After every remount the root's `user.total_bytes` equalled the bytes known to be in the tree: "
              f"{sum(t['exact'])} of {len(t['exact'])}.", ""]
    s += ["Raw timings: `$DTKFS_BENCH_DIR/journal/results.json`.", "<!-- journal-bench:end -->"]
    return "\n".join(s) + "\n"


def main():
    clean_leftovers(WORK)
    wp, rec = None, []
    try:
        wp = write_path() if "write" in ONLY else None
        for f, p in TREES if "recovery" in ONLY else []:
            rec.append(recovery(f, p))
    except Exception as e:  # write what was measured; the section says what is missing
        say(f"PROBLEM: {e!r}; writing what was measured")
        unmount_all()
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump({"write_path": wp, "recovery": rec}, f, indent=1)
    text = section(wp, rec)
    if WRITE:
        write_section(REPO, "journal-bench", text)
    print(text)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the mounts are cleaned up
signal.signal(signal.SIGINT, lambda *_: sys.exit(1))
try:
    main()
finally:
    unmount_all()
    remove_scratch()
