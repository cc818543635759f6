#!/usr/bin/env python3
"""The watcher benchmark (issue "changes beside the mount"): what watching the source costs
and how fast it is, in one run. Run it through bench/watch_bench.sh, which makes a fresh
scratch ext4 and builds first.

  1. workloads: the watcher's cost on work done through the mount. Extract the Linux 6.1
     source tarball (uncompressed beforehand) into the mount and remove it again (`rm -rf`),
     with -o watch=off, fanotify and inotify, the modes alternating in every round, one mount
     at a time (a fanotify mark covers the whole filesystem, so two mounts would see each
     other's events). Wall time and the daemon's CPU time.
  2. latency: from an append to SRC/dir/file beside the mount until `stat` through the mount
     shows the new size, with -o attr_timeout=600,entry_timeout=600 (only the daemon's
     invalidation of the kernel's cache can make it visible), and with the default timeouts.
     And whether a size query right after such a write already counts it.
  3. cpu: the daemon's CPU time (utime + stime of /proc/PID/stat) per append beside the
     mount, into a directory of 100,000 entries and one of 100: a burst (as fast as Python
     appends, user.total_bytes read every 1000 appends and checked), a paced stream, and a
     paced stream into a file held open through the mount (the inode table knows it).
  4. verify: the background verification of the kernel tree and of a 1,000,000-file tree
     (mount from an index, wait for the first verification, then request more through
     user.dtkfs.verify as `dtkfs verify` does) against `dtkfs scan` of the same tree
     (hyperfine).

Writes the section between the watch-bench markers of docs/benchmarks.md (only when all four
parts ran; DTKFS_WATCH_BENCH_STAGES selects parts, for debugging).
Arguments: REPO DTKFS_BINARY WORK_DIR TARBALL ROUNDS BIG [PART...]
PARTS: top-level directories of the kernel tree to use (default: the whole tree for the
verification, WORKLOAD_PARTS below for the in-mount workloads).
"""
import concurrent.futures
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (dtkfs_status, force_unmount, loadavg, out, run, timed,  # noqa: E402
                      write_section)

REPO, DTKFS, WORK, TARBALL = sys.argv[1:5]
ROUNDS, BIG = int(sys.argv[5]), int(sys.argv[6])
PARTS = sys.argv[7:]
# The in-mount workloads use these top-level directories by default (15,073 entries): the
# daemon keeps an O_PATH fd per inode the kernel knows, and an extraction leaves every entry
# known, so the whole tree (83,731 entries) fails with EMFILE under RLIMIT_NOFILE 20000 (the
# hard limit on the VM these figures come from, which root there cannot raise).
WORKLOAD_PARTS = PARTS or "include sound fs net kernel lib mm security crypto block".split()
DIR_FILES = int(os.environ.get("DTKFS_WATCH_BENCH_DIR_FILES", "100000"))
APPENDS = int(os.environ.get("DTKFS_WATCH_BENCH_APPENDS", "20000"))
SAMPLES = int(os.environ.get("DTKFS_WATCH_BENCH_SAMPLES", "300"))
ALL_STAGES = ["workloads", "latency", "cpu", "verify"]
STAGES = os.environ.get("DTKFS_WATCH_BENCH_STAGES", " ".join(ALL_STAGES)).split()
MODES = ["off", "fanotify", "inotify"]
LONG = "attr_timeout=600,entry_timeout=600"
CLK = os.sysconf("SC_CLK_TCK")
VERIFY_RUNS = max(7, ROUNDS)  # scans and verifications per tree
PACED_APPENDS, PACED_RATE = 1000, 100  # the paced stream: appends, per second
mounted = []
problems = []  # wrong totals, dead daemons, ...: printed loudly and written into the section
LOG = None


def say(msg):
    print(f"watch_bench {time.strftime('%H:%M:%S')}: {msg}", file=sys.stderr, flush=True)


def problem(msg):
    problems.append(msg)
    say("PROBLEM: " + msg)




# ---- mounts -------------------------------------------------------------------------------

def mount(src, mnt, idx, opts):
    os.makedirs(mnt, exist_ok=True)
    argv = [DTKFS, "mount", src, mnt, "--index", idx] + (["-o", opts] if opts else [])
    LOG.write(f"$ {' '.join(argv)}\n")
    LOG.flush()
    mounted.append(mnt)
    run(argv, stdout=LOG, stderr=LOG)
    return int(dtkfs_status(DTKFS, mnt)["pid"])


def umount(mnt):
    if mnt in mounted:
        mounted.remove(mnt)
    r = subprocess.run([DTKFS, "umount", mnt], stdout=LOG, stderr=LOG)
    if r.returncode != 0 or os.path.ismount(mnt):
        problem(f"`dtkfs umount {mnt}` failed (exit {r.returncode})")
        force_unmount(mnt)


def unmount_all():
    for m in reversed(mounted):
        try:
            subprocess.run([DTKFS, "umount", m], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            force_unmount(m)
    mounted.clear()


def cpu_seconds(pid):
    """utime + stime of the whole process (every thread, live or gone), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except FileNotFoundError:
        raise RuntimeError(f"the daemon (pid {pid}) is gone")
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK


VERIFY_DONE = re.compile(r"done (\d+) directories in ([0-9.]+) s, (\d+) corrected")


def wait_verified(mnt, runs=1, timeout=7200):
    """Waits until verify_runs >= runs and none is running; returns (dirs, seconds, corrected)."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        st = dtkfs_status(DTKFS, mnt)
        if st["verify"] == "never" and time.monotonic() > start + 10:
            raise RuntimeError(f"{mnt}: no verification started 10 s after the mount from an index")
        if int(st.get("verify_runs", "0")) >= runs and not st["verify"].startswith("running"):
            m = VERIFY_DONE.match(st["verify"])
            if not m:
                raise RuntimeError(f"unexpected verify status: {st['verify']!r}")
            return int(m[1]), float(m[2]), int(m[3])
        if time.monotonic() > deadline:
            raise RuntimeError(f"verification of {mnt} not done after {timeout} s: {st['verify']}")
        time.sleep(0.1)


def verified_after(mnt, runs_before, t0):
    """Seconds from t0 until a verification finished after runs_before (status read through
    the control attribute every 10 ms, cheaper than a `dtkfs status` process)."""
    while True:
        st = dict(l.split(": ", 1) for l in os.getxattr(mnt, "user.dtkfs.status").decode().splitlines() if ": " in l)
        if int(st["verify_runs"]) > runs_before and not st["verify"].startswith("running"):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > 7200:
            raise RuntimeError(f"verification of {mnt} not done after 7200 s")
        time.sleep(0.01)


def total_bytes(path):
    return int(os.getxattr(path, "user.total_bytes"))


def tree_stats(root):
    """(bytes: the sum of st_size of every non-directory, files, directories) of a source."""
    p = subprocess.Popen(["find", root, "-printf", "%y %s\n"], stdout=subprocess.PIPE, text=True)
    total = files = dirs = 0
    for line in p.stdout:
        kind, size = line.split()
        if kind == "d":
            dirs += 1
        else:
            files += 1
            total += int(size)
    if p.wait():
        raise RuntimeError(f"find {root} failed")
    return total, files, dirs


def check_total(mnt_path, src_path, what):
    got, want = total_bytes(mnt_path), tree_stats(src_path)[0]
    if got != want:
        problem(f"{what}: user.total_bytes of {mnt_path} is {got:,}, the source walk says {want:,}")
    return got == want


# ---- 1: in-mount workloads ------------------------------------------------------------------

def stage_workloads(tar):
    base = os.path.join(WORK, "workloads")
    src, mnt, idx = (os.path.join(base, n) for n in ("src", "mnt", "index"))
    os.makedirs(src)
    names = ["extract (tar -x)", "remove (rm -rf)"]
    times = {w: {m: [] for m in MODES} for w in names}
    cpu = {w: {m: [] for m in MODES} for w in names}
    counters = {m: [] for m in MODES}
    exact = []
    tree_src = os.path.join(src, "linux-source-6.1")
    tree_mnt = os.path.join(mnt, "linux-source-6.1")
    for r in range(ROUNDS):
        order = MODES[r % 3:] + MODES[:r % 3]  # rotate, so no mode always goes first
        for m in order:
            pid = mount(src, mnt, idx, f"watch={m}")
            st = dtkfs_status(DTKFS, mnt)
            if not st["watch"].startswith(m):
                problem(f"-o watch={m} mounted with watch: {st['watch']}")
            for w, argv in ((names[0], ["tar", "-xf", tar, "-C", mnt]), (names[1], ["rm", "-rf", tree_mnt])):
                run(["sync"])  # the previous step's writeback is not timed here
                c0 = cpu_seconds(pid)
                times[w][m].append(timed(argv))
                cpu[w][m].append(cpu_seconds(pid) - c0)
                if w == names[0]:
                    exact.append(check_total(tree_mnt, tree_src, f"extraction with watch={m}"))
            st = dtkfs_status(DTKFS, mnt)
            counters[m].append({k: st.get(k) for k in ("events", "out_of_band_corrected", "watch")})
            umount(mnt)
            say(f"workloads: round {r + 1}/{ROUNDS}, watch={m}: extract {times[names[0]][m][-1]:.1f} s, "
                f"remove {times[names[1]][m][-1]:.1f} s")
    run(["rm", "-rf", base])
    return {"times": times, "cpu": cpu, "counters": counters, "exact": exact}


# ---- 2 and 3: a tree with a small, a 100-entry and a 100,000-entry directory ---------------

def make_files(d, n, size_of):
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        fd = os.open(os.path.join(d, f"f{i:07d}"), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        size = size_of(i)
        if size:
            os.ftruncate(fd, size)  # sparse: a size without blocks, quick to make
        os.close(fd)


def append(path, data=b"0123456789"):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, data)
    os.close(fd)


def oob_tree():
    base = os.path.join(WORK, "oob")
    src = os.path.join(base, "src")
    if not os.path.isdir(src):
        make_files(os.path.join(src, "lat"), 10, lambda i: 100 + i)
        make_files(os.path.join(src, "small"), 100, lambda i: 1 + i % 100)
        make_files(os.path.join(src, "big"), DIR_FILES, lambda i: 1 + i % 100)
        # Every mount is from an index, so each starts with a verification (waited for).
        run([DTKFS, "scan", src, "--index", os.path.join(base, "index")], stdout=LOG, stderr=LOG)
    return base, src


def latency(src_file, mnt_file, n, timeout):
    """Appends 10 bytes to src_file n times; after each, polls os.stat(mnt_file) back to back
    until it shows the new size. Returns (latencies in s, misses, polls, poll seconds)."""
    size = os.stat(src_file).st_size
    deadline = time.monotonic() + 5
    while os.stat(mnt_file).st_size != size and time.monotonic() < deadline:
        time.sleep(0.01)
    lat, misses, polls, poll_time = [], 0, 0, 0.0
    for _ in range(n):
        time.sleep(0.003)  # the daemon idle again, as for a write that comes alone
        fd = os.open(src_file, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"0123456789")
        t0 = time.perf_counter()
        os.close(fd)
        size += 10
        while True:
            seen = os.stat(mnt_file).st_size
            t = time.perf_counter()
            polls += 1
            if seen == size:
                lat.append(t - t0)
                break
            if t - t0 > timeout:
                misses += 1
                break
        poll_time += t - t0
    return lat, misses, polls, poll_time


def query_after_write(src_file, mnt_dir, n):
    """A size query right after an append beside the mount: does it count it? Returns
    (right, wrong, getxattr seconds)."""
    want = total_bytes(mnt_dir)
    right, took = 0, []
    for _ in range(n):
        time.sleep(0.003)
        append(src_file)
        want += 10
        t0 = time.perf_counter()
        got = total_bytes(mnt_dir)
        took.append(time.perf_counter() - t0)
        right += got == want
        want = got  # a miss is reported once, not for every query after it
    return right, n - right, took


def stage_latency():
    base, src = oob_tree()
    mnt, idx = os.path.join(base, "mnt"), os.path.join(base, "index")
    rows = []
    big_samples = max(20, SAMPLES // 3)
    plans = [  # (watch, options, [(directory, samples, timeout)])
        ("fanotify", LONG, [("lat", SAMPLES, 10), ("big", big_samples, 10)]),
        ("inotify", LONG, [("lat", SAMPLES, 10), ("big", big_samples, 10)]),
        ("fanotify", "", [("lat", SAMPLES, 10)]),
        ("off", LONG, [("lat", 3, 2)]),  # the control: nothing but an invalidation shows it
    ]
    query = None
    for watch, opts, dirs in plans:
        pid = mount(src, mnt, idx, ",".join(o for o in (f"watch={watch}", opts) if o))
        wait_verified(mnt)  # a mount from an index verifies first: not while measuring
        for d, n, timeout in dirs:
            f = "f0000001"
            os.stat(os.path.join(mnt, d, f))  # the kernel knows the file and caches its attributes
            lat, misses, polls, poll_time = latency(os.path.join(src, d, f), os.path.join(mnt, d, f), n, timeout)
            rows.append({"watch": watch, "options": opts or "defaults (1 s)", "dir": d, "samples": n,
                         "latencies": lat, "misses": misses, "timeout": timeout,
                         "poll_us": poll_time / polls * 1e6})
            say(f"latency: watch={watch} {opts or 'default timeouts'} {d}: "
                f"p50 {pct(lat, 50) * 1000 if lat else float('nan'):.2f} ms, {misses} not visible")
            if watch != "off" and misses:
                problem(f"latency, watch={watch} {opts}, {d}: {misses} of {n} appends not visible "
                        f"through stat within {timeout} s")
        if watch == "fanotify" and opts == LONG:
            query = query_after_write(os.path.join(src, "lat", "f0000002"), os.path.join(mnt, "lat"), SAMPLES)
            if query[1]:
                problem(f"a size query right after an append beside the mount missed it {query[1]} "
                        f"of {SAMPLES} times")
        if watch != "off":
            check_total(mnt, src, f"after the latency runs with watch={watch}")
        cpu_seconds(pid)  # still alive?
        umount(mnt)
    return {"rows": rows, "query": query}


def stage_cpu():
    base, src = oob_tree()
    mnt, idx = os.path.join(base, "mnt"), os.path.join(base, "index")
    rows, verify_after_mount = [], []
    for watch in ("fanotify", "inotify"):
        pid = mount(src, mnt, idx, f"watch={watch}")
        verify_after_mount.append(wait_verified(mnt))
        for d, entries in (("big", DIR_FILES), ("small", 100)):
            mdir = os.path.join(mnt, d)
            for stream in ("burst", "paced", "paced, open in the mount"):
                n = APPENDS if stream == "burst" else PACED_APPENDS
                target = os.path.join(src, d, "f0000000")
                held = None
                if stream != "burst" and stream != "paced":
                    # Another file, held open through the mount for the stream (as `tail -f`
                    # would): the daemon's inode table knows it the whole time.
                    target = os.path.join(src, d, "f0000002")
                    held = os.open(os.path.join(mnt, d, "f0000002"), os.O_RDONLY)
                want = tree_stats(os.path.join(src, d))[0]
                if total_bytes(mdir) != want:
                    problem(f"cpu, watch={watch}, {d}: the total is wrong before the stream")
                time.sleep(0.5)
                st0 = dtkfs_status(DTKFS, mnt)
                c0 = cpu_seconds(pid)
                t0 = time.perf_counter()
                checks = wrong = 0
                for i in range(1, n + 1):
                    if stream != "burst":
                        delay = t0 + i / PACED_RATE - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                    append(target)
                    want += 10
                    if i % 1000 == 0 or i == n:
                        checks += 1
                        got = total_bytes(mdir)
                        if got != want:
                            wrong += 1
                            problem(f"cpu, watch={watch}, {d} ({entries:,} entries), {stream}: after "
                                    f"{i} appends user.total_bytes is {got:,}, the true sum {want:,}")
                wall = time.perf_counter() - t0
                if held is not None:
                    os.close(held)
                time.sleep(0.2)  # a drain woken by the last events finishes
                cpu = cpu_seconds(pid) - c0
                st1 = dtkfs_status(DTKFS, mnt)
                delta = lambda k: int(st1[k]) - int(st0[k])
                rows.append({"watch": watch, "dir": d, "entries": entries, "stream": stream,
                             "appends": n, "wall": wall, "cpu": cpu, "events": delta("events"),
                             "corrected": delta("out_of_band_corrected"), "checks": checks,
                             "wrong": wrong})
                say(f"cpu: watch={watch} {d} {stream}: {n} appends in {wall:.1f} s, daemon CPU "
                    f"{cpu:.2f} s = {cpu / n * 1e6:.0f} µs per append, {wrong} wrong of {checks}")
        check_total(mnt, src, f"after the append streams with watch={watch}")
        umount(mnt)
    return {"rows": rows, "verify_after_mount": verify_after_mount}


# ---- 4: verification against scan ----------------------------------------------------------

def make_big_dirs(root, files, ds):
    for d in ds:
        n = min(1000, files - d * 1000)
        make_files(os.path.join(root, f"d{d:04d}"), n, lambda i: (d * 1000 + i) % 64)


def make_big_tree(root, files):
    """files empty or sparse files in directories of 1000, made by two processes."""
    dirs = (files + 999) // 1000
    os.makedirs(root)
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        for f in [ex.submit(make_big_dirs, root, files, range(k, dirs, 2)) for k in range(2)]:
            f.result()


def stage_verify(full_tar):
    base = os.path.join(WORK, "verify")
    trees = []
    ksrc = os.path.join(base, "kernel", "src")
    os.makedirs(ksrc)
    run(["tar", "-xf", full_tar, "-C", ksrc] + [f"linux-source-6.1/{p}" for p in PARTS])
    trees.append(("kernel", os.path.join(base, "kernel")))
    t0 = time.perf_counter()
    make_big_tree(os.path.join(base, "big", "src"), BIG)
    generated = time.perf_counter() - t0
    say(f"verify: made the {BIG:,}-file tree in {generated:.0f} s")
    trees.append(("big", os.path.join(base, "big")))
    results = {}
    for name, tdir in trees:
        src, mnt, idx = (os.path.join(tdir, n) for n in ("src", "mnt", "index"))
        total, files, dirs = tree_stats(src)
        hf = os.path.join(tdir, "scan.json")
        run(["hyperfine", "-N", "--style", "none", "--warmup", "1", "--runs", str(VERIFY_RUNS),
             "--export-json", hf, f"{DTKFS} scan {src} --index {idx}"], stdout=LOG, stderr=LOG)
        scan = json.load(open(hf))["results"][0]
        pid = mount(src, mnt, idx, "")  # defaults: watch=auto (fanotify), verify=on
        t0 = time.perf_counter()
        walls = [verified_after(mnt, 0, t0)]
        runs = [wait_verified(mnt, 1)]
        cpus = []
        for k in range(2, VERIFY_RUNS + 1):
            c0 = cpu_seconds(pid)
            t0 = time.perf_counter()
            os.setxattr(mnt, "user.dtkfs.verify", b"1")  # what `dtkfs verify` does
            walls.append(verified_after(mnt, k - 1, t0))
            cpus.append(cpu_seconds(pid) - c0)
            runs.append(wait_verified(mnt, k))
        # And the command, once: it waits for the end and prints the result.
        said = out([DTKFS, "verify", mnt]).strip()
        if not VERIFY_DONE.match(said):
            problem(f"`dtkfs verify` printed {said!r}")
        for dirs_done, secs, corrected in runs:
            if corrected:
                problem(f"verification of the unchanged {name} tree corrected {corrected} directories")
            if dirs_done != dirs:
                problem(f"verification of the {name} tree covered {dirs_done} directories of {dirs}")
        got = total_bytes(mnt)
        if got != total:
            problem(f"{name} tree: user.total_bytes {got:,}, the source walk {total:,}")
        st = dtkfs_status(DTKFS, mnt)
        umount(mnt)
        results[name] = {"files": files, "dirs": dirs, "bytes": total, "exact": got == total,
                         "scan": scan, "verify": runs,
                         "verify_wall": walls, "verify_cpu": cpus, "watch": st["watch"]}
        say(f"verify: {name}: scan median {statistics.median(scan['times']):.3f} s, verification "
            f"{[round(w, 3) for w in walls]} s")
    results["generated_seconds"] = generated
    return results


# ---- the section ---------------------------------------------------------------------------

def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]  # nearest rank


def goal(ok):
    return "**met**" if ok else "**missed**"


LOADS = {}


def load_line(stage):
    """A sentence with the load average when the part started and ended ("" if unknown)."""
    if stage not in LOADS:
        return ""
    a, b = LOADS[stage]
    return f"Load average when this part started: {a}; when it ended: {b}. "


def section(res, info):
    LOADS.update(info.get("load", {}))
    s = ["<!-- watch-bench:begin (generated by bench/watch_bench.sh; edits here are overwritten) -->",
         "## Watching the source: cost and latency", ""]
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20
    load_end = " ".join(open("/proc/loadavg").read().split()[:3])
    s += [f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {info['commit']}, "
          f"{info['minutes']:.0f} minutes. {os.cpu_count()} cores ({cpu_model}), {mem:.0f} GiB RAM, Linux "
          f"{platform.release()}; load average at the start {info['load_start']}, at the end {load_end}. "
          "Every tree is on one fresh journaled ext4 in a loop file; the daemon runs as root, so "
          "`-o watch=auto` is fanotify (one filesystem mark).", ""]
    if problems:
        s += ["**Problems seen in this run:**", ""] + [f"- {p}" for p in problems] + [""]

    if "workloads" in res:
        s += section_workloads(res["workloads"], info)
    if "latency" in res:
        s += section_latency(res["latency"])
    if "cpu" in res:
        s += section_cpu(res["cpu"])
    if "verify" in res:
        s += section_verify(res["verify"])
    s += ["Raw results: `$DTKFS_BENCH_DIR/watch-results.json`.", "<!-- watch-bench:end -->"]
    return "\n".join(s) + "\n"


def section_workloads(w, info):
    what = (f"the directories {', '.join(WORKLOAD_PARTS)} of the Linux 6.1 source tarball" if WORKLOAD_PARTS
            else "the Linux 6.1 source tarball")
    s = []
    med = {k: {m: statistics.median(v) for m, v in by.items()} for k, by in w["times"].items()}
    best = {k: {m: min(v) for m, v in by.items()} for k, by in w["times"].items()}
    s += [f"### Work through the mount, watcher on and off ({what}, {info['entries']:,} entries)", "",
          load_line("workloads"),
          f"{ROUNDS} rounds; in each, one mount per mode (`-o watch=off`, `fanotify`, `inotify`; the "
          "other options default), in rotated order: extract the uncompressed tarball into the mount, "
          "then `rm -rf` the extracted tree; `sync` before each timed step. Median seconds (best in "
          "parentheses); the per-round ratio compares the fanotify and off runs of one round, so slow "
          "drift of the machine's load cancels out. Goal (judged on the medians): fanotify ≤ 1.03x "
          "of off." + (
              "" if PARTS else " Not the whole tree: the daemon keeps an `O_PATH` fd per inode the "
              "kernel knows, an extraction leaves every entry known, and the whole tree's 83,731 "
              f"entries exceed this machine's RLIMIT_NOFILE ({info['nofile']:,}, which root cannot "
              "raise here): tar fails with EMFILE."), "",
          "| workload | watch=off | fanotify | inotify | fanotify / off: medians | best runs | per-round ratios (median, range) | goal ≤ 1.03x | inotify / off (medians) |",
          "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for k in w["times"]:
        m, b = med[k], best[k]
        per_round = [f / o for f, o in zip(w["times"][k]["fanotify"], w["times"][k]["off"])]
        s.append(f"| {k} | " + " | ".join(f"{m[x]:.2f} ({b[x]:.2f})" for x in MODES) +
                 f" | {m['fanotify'] / m['off']:.3f}x | {b['fanotify'] / b['off']:.3f}x | "
                 f"{statistics.median(per_round):.3f}x ({min(per_round):.2f}-{max(per_round):.2f}) | "
                 f"{goal(m['fanotify'] / m['off'] <= 1.03)} | {m['inotify'] / m['off']:.2f}x |")
    cmed = {k: {m: statistics.median(v) for m, v in by.items()} for k, by in w["cpu"].items()}
    s += ["", "The daemon's CPU time in the same steps (utime + stime from `/proc/PID/stat`, median "
          "seconds):", "",
          "| workload | watch=off | fanotify | inotify | fanotify − off | inotify − off |",
          "|---|---:|---:|---:|---:|---:|"]
    for k, c in cmed.items():
        s.append(f"| {k} | {c['off']:.2f} | {c['fanotify']:.2f} | {c['inotify']:.2f} | "
                 f"{c['fanotify'] - c['off']:+.2f} | {c['inotify'] - c['off']:+.2f} |")
    ev = lambda m, k: statistics.median([int(c[k]) for c in w["counters"][m]])
    s += ["", f"Events read per mount (extract + remove, median): fanotify {ev('fanotify', 'events'):,.0f} "
          f"(its own, dropped unread by pid), inotify {ev('inotify', 'events'):,.0f} (inotify cannot "
          "tell the daemon's own changes: each batch is reconciled); directories a reconcile changed: "
          f"fanotify {ev('fanotify', 'out_of_band_corrected'):,.0f}, inotify "
          f"{ev('inotify', 'out_of_band_corrected'):,.0f}. After every extraction, `user.total_bytes` "
          f"of the extracted root equalled a walk of the source: {sum(w['exact'])} of {len(w['exact'])} times.", ""]
    return s


def section_latency(lt):
    polls = [r["poll_us"] for r in lt["rows"] if r["latencies"]]
    s = ["### Latency: a change beside the mount, seen through it", "", load_line("latency"),
          "Python: `os.write` of 10 bytes appended to `SRC/DIR/f0000001` (then close), then "
          "`os.stat` of `MNT/DIR/f0000001` back to back until it shows the new size "
          f"(one poll took {min(polls):.1f}-{max(polls):.1f} µs on average, the poll granularity); "
          "3 ms pause between samples. The kernel caches the file's attributes before each sample, "
          "so with 600 s timeouts only the daemon's invalidation can make the new size visible. "
          f"`lat` has 10 files, `big` {DIR_FILES:,}.", "",
          "| watch | timeouts | directory | samples | p50 | p90 | p99 | max | not visible |",
          "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in lt["rows"]:
        L = r["latencies"]
        cells = " | ".join(f"{pct(L, p) * 1000:.2f} ms" for p in (50, 90, 99, 100)) if L else "– | – | – | –"
        miss = f"{r['misses']} (within {r['timeout']} s)"
        s.append(f"| {r['watch']} | {r['options']} | `{r['dir']}` | {r['samples']} | {cells} | {miss} |")
    q = lt["query"]
    code = open(os.path.join(os.environ.get("DTKFS_BENCH_SOURCE", REPO), "src", "fs", "source_watcher.cc")).read()
    m = re.search(r"kCoalesce = std::chrono::milliseconds\((\d+)\)", code)
    coalesce = f", {m[1]} ms after the first (`kCoalesce`)," if m else ""
    m = re.search(r"kRememberFrom = ([0-9']+)", code)
    remember = (f" In a directory of {m[1].replace(chr(39), ',')} entries or more (`kRememberFrom`) "
                "the first event lists the directory and remembers its names; later single-name "
                "events cost a stat each.") if m else ""
    s += ["", f"The watcher's events are applied in batches{coalesce} which sets the floor of these "
          f"figures.{remember} A size query does not wait: it applies what is queued first. `getxattr user.total_bytes` of `MNT/lat` right after an append beside the mount "
          f"(fanotify): counted it {q[0]} of {q[0] + q[1]} times; the query took {pct(q[2], 50) * 1000:.2f} ms "
          f"at the median, {pct(q[2], 99) * 1000:.2f} ms at p99.", ""]
    return s


def section_cpu(c):
    s = ["### Daemon CPU per append beside the mount", "", load_line("cpu"),
          "Python appends to one file of a directory in SRC (open `O_APPEND`, write 10 bytes, close); "
          f"burst: {APPENDS:,} appends as fast as they go, `user.total_bytes` of `MNT/DIR` read and "
          f"checked every 1,000 and at the end; paced: {PACED_APPENDS:,} appends at {PACED_RATE} per "
          "second, checked every 1,000 and at the end; \"paced, open in the mount\": the same into "
          "another file of the directory, held open (read-only) through the mount meanwhile, as "
          "`tail -f MNT/DIR/FILE` would (the daemon's inode table knows it). Daemon CPU: utime + stime of `/proc/PID/stat` "
          f"(every thread; {1000 // CLK} ms ticks) before and after, the size queries included. "
          "Daemon CPU % is of one core over the stream's wall time. Events: read by the daemon "
          "(fanotify merges identical events still queued, inotify only consecutive ones); corrected: "
          "the growth of `out_of_band_corrected` in `dtkfs status`.", "",
          "| watch | directory | stream | appends | wall s | daemon CPU s | CPU µs per append | daemon CPU % | events | corrected | checks wrong |",
          "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in c["rows"]:
        s.append(f"| {r['watch']} | {r['entries']:,} entries | {r['stream']} | {r['appends']:,} | {r['wall']:.1f} | "
                 f"{r['cpu']:.2f} | {r['cpu'] / r['appends'] * 1e6:,.0f} | {r['cpu'] / r['wall'] * 100:.0f}% | "
                 f"{r['events']:,} | {r['corrected']:,} | {r['wrong']} of {r['checks']} |")
    return s + [""]


def section_verify(v):
    try:
        ag = open("/proc/sys/kernel/sched_autogroup_enabled").read().strip() == "1"
    except OSError:
        ag = False
    autogroup = (" (with `kernel.sched_autogroup_enabled=1`, as here, its nice value only ranks it "
                 "among the daemon's own threads: the daemon is a session of its own, and sessions "
                 "share the CPU as equals)") if ag else ""
    s = ["### Background verification against a scan", "", load_line("verify"),
         f"`dtkfs scan SRC --index FILE`: hyperfine, warmup 1, {VERIFY_RUNS} runs, no shell. "
         "Verification: mount from that index with the defaults (`verify=on`, `watch=auto`); the "
         "first verification starts with the mount, then "
         f"{VERIFY_RUNS - 1} more are requested through the control attribute `user.dtkfs.verify` "
         "(as `dtkfs verify MNT` does). Each is timed from the mount's return or the request until "
         "`user.dtkfs.status` shows it done (read every 10 ms); the daemon's own figure "
         "(`dtkfs status`: \"done N directories in X s\", to 0.1 s) is given too. The verifier is one "
         f"thread at nice 19 in the idle I/O class{autogroup}, reconciling one directory at a time under the "
         "namespace lock (a listing with `fstatat` of every entry); the scan walks with 2 threads. Page "
         "cache warm for both (the scans ran first); nothing else changes the trees meanwhile. "
         f"The {BIG:,}-file tree: {BIG // 1000:,} directories of 1,000 empty or sparse files, made in "
         f"{v['generated_seconds']:.0f} s.", "",
         "| tree | files | directories | `dtkfs scan`: median (min) | scan CPU (user + sys) | verification: first (after the mount) | requested: median (min) | the daemon's figures | verification CPU | verification / scan (wall) | (CPU) | corrected |",
         "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for name, label in (("kernel", "Linux 6.1" + (f" ({', '.join(PARTS)})" if PARTS else "")),
                        ("big", f"{BIG:,} files")):
        t = v[name]
        sc = t["scan"]
        scan_med, scan_cpu = statistics.median(sc["times"]), sc["user"] + sc["system"]
        walls = t["verify_wall"]
        vmed, vcpu = statistics.median(walls[1:]), statistics.median(t["verify_cpu"])
        daemon = ", ".join(f"{r[1]:.1f}" for r in t["verify"])
        s.append(f"| {label} | {t['files']:,} | {t['dirs']:,} | {secs(scan_med)} ({secs(min(sc['times']))}) | "
                 f"{secs(scan_cpu)} | {secs(walls[0])} | {secs(vmed)} ({secs(min(walls[1:]))}) | {daemon} s | "
                 f"{secs(vcpu)} | {vmed / scan_med:.1f}x | {vcpu / scan_cpu:.1f}x | "
                 f"{sum(r[2] for r in t['verify'])} |")
    return s + ["", "The first verification may start before `dtkfs mount` returns, so its time is a lower "
                "bound; the ratios use the requested ones. Verification CPU: the daemon's (utime + "
                "stime) during a requested verification, median; scan CPU: hyperfine's mean user + "
                "system time.", ""]


def secs(x):
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def main():
    global LOG
    t_start = time.perf_counter()
    load_start = " ".join(open("/proc/loadavg").read().split()[:3])
    os.makedirs(os.path.join(WORK, "state"), exist_ok=True)
    os.environ["XDG_STATE_HOME"] = os.path.join(WORK, "state")
    LOG = open(os.path.join(WORK, "log.txt"), "a")
    res, info = {}, {"load_start": load_start, "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}
    head = out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).strip()
    changed = out(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"]).splitlines()
    paths = [l[3:] for l in changed]
    if os.environ.get("DTKFS_BENCH_COMMIT"):  # the driver built a commit, not the working tree
        head, paths = os.environ["DTKFS_BENCH_COMMIT"], []
    info["commit"] = (head if head.startswith("`") else f"`{head}`") + (
        "" if not paths else f" with uncommitted changes to {', '.join(f'`{p}`' for p in paths)}"
        if len(paths) <= 4 else f" with uncommitted changes to {len(paths)} files")
    tar = full_tar = os.path.join(WORK, "linux.tar")
    if "workloads" in STAGES or "verify" in STAGES:
        say("uncompressing the tarball")
        with open(full_tar, "wb") as f:
            run(["xz", "-T2", "-dc", TARBALL], stdout=f)
    info["load"] = {}
    if "workloads" in STAGES:
        if WORKLOAD_PARTS:  # a tarball of just those parts, so tar does not skip through the rest
            tar = os.path.join(WORK, "parts.tar")
            stage = os.path.join(WORK, "stage")
            os.makedirs(stage)
            run(["tar", "-xf", full_tar, "-C", stage] + [f"linux-source-6.1/{p}" for p in WORKLOAD_PARTS])
            run(["tar", "-cf", tar, "-C", stage, "linux-source-6.1"])
            run(["rm", "-rf", stage])
        info["entries"] = int(out(["sh", "-c", f"tar -tf {tar} | wc -l"]))
        if info["entries"] + 1000 > info["nofile"]:
            problem(f"the extraction through the mount keeps {info['entries']:,} inodes known, each an "
                    f"O_PATH fd in the daemon, over RLIMIT_NOFILE {info['nofile']:,}: expect EMFILE")
        say(f"workloads: {info['entries']:,} entries, {ROUNDS} rounds")
        load0 = loadavg()
        res["workloads"] = stage_workloads(tar)
        info["load"]["workloads"] = (load0, loadavg())
    if "latency" in STAGES or "cpu" in STAGES:
        say(f"making the tree for the changes beside the mount ({DIR_FILES:,}-entry directory)")
        oob_tree()
    if "latency" in STAGES:
        load0 = loadavg()
        res["latency"] = stage_latency()
        info["load"]["latency"] = (load0, loadavg())
    if "cpu" in STAGES:
        load0 = loadavg()
        res["cpu"] = stage_cpu()
        info["load"]["cpu"] = (load0, loadavg())
    if "verify" in STAGES:
        load0 = loadavg()
        res["verify"] = stage_verify(full_tar)
        info["load"]["verify"] = (load0, loadavg())
    info["minutes"] = (time.perf_counter() - t_start) / 60
    res["problems"] = problems
    with open(os.path.join(os.path.dirname(WORK), "watch-results.json"), "w") as f:  # outlives the scratch fs
        json.dump({"results": res, "info": info}, f, indent=1)
    text_section = section(res, info)
    if set(STAGES) != set(ALL_STAGES):
        print(text_section)
        say(f"only {STAGES} ran: docs/benchmarks.md left as it is")
        return
    write_section(REPO, "watch-bench", text_section)
    print(text_section)
    if problems:
        say(f"{len(problems)} PROBLEMS (in the section too):")
        for p in problems:
            say("  " + p)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the mounts are cleaned up
signal.signal(signal.SIGINT, lambda *_: sys.exit(1))
try:
    main()
finally:
    unmount_all()
