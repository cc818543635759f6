#!/usr/bin/env python3
"""The speed benchmark (issue "Speed: close to native"): every workload on native ext4,
bindfs, mergerfs, dtkfs and dtkfs with size tracking off, side by side. Run it through
bench/run.sh, which installs the peers and builds dtkfs (Release) first.

Every target gets its own fresh journaled ext4 in a loop file of the same size (one
filesystem each, so dtkfs's fanotify watcher, a mark on the whole filesystem, sees only its
own work). In every round each workload runs on every target, the targets in an order
rotated per round. Workloads (WORKLOADS below):
  - extract the kernel subset (`tar -x` of an uncompressed tarball of some top-level
    directories) and, unless DTKFS_BENCH_WHOLE=0, the whole kernel tree; `rm -rf` of each;
  - walks of the subset: `du -sb` and `find . -print0 | xargs -0 stat`, each first with a
    cold cache (`sync; echo 3 > /proc/sys/vm/drop_caches`) then repeated at once;
  - `git status` in a checkout of the subset (committed once before the rounds), cold and
    repeated;
  - sequential write (dd, 1 MiB blocks, conv=fsync) and read (caches dropped) of one file;
  - fio 4 KiB random write then random read (psync, several jobs, time-bounded);
  - many small appends (open, write 100 bytes, close: what `>>` in a shell loop does);
  - getxattr latency per call (p50, p99) of dtkfs's user.total_bytes and mergerfs's
    user.mergerfs.basepath, on the mount's root and on a file: idle, during an extraction
    into the same mount, and (dtkfs) during `dtkfs compact` in a loop.

Writes the section between the speed-bench markers of docs/benchmarks.md and the chart
docs/benchmarks-speed.svg. Raw results: WORK_DIR/results.json (all else under WORK_DIR is
removed at the end).
Arguments: REPO DTKFS_BINARY WORK_DIR TARBALL ROUNDS
Environment (for short development runs; the defaults are the real benchmark):
  DTKFS_BENCH_PARTS    top-level directories of the kernel subset (default "fs include lib
                       kernel net mm")
  DTKFS_BENCH_WHOLE    0: skip the whole kernel tree (default 1)
  DTKFS_BENCH_ONLY     workload groups to run (default all: "tree whole walk git seq fio
                       append xattr"); the section is written only when all ran
  DTKFS_BENCH_SEQ_MIB  sequential file size (default 1024)
  DTKFS_BENCH_FIO_MIB  fio file size per job (default 128), DTKFS_BENCH_FIO_JOBS (default 4),
  DTKFS_BENCH_FIO_SECONDS  runtime of each fio job (default 10)
  DTKFS_BENCH_APPENDS  small appends (default 100000)
  DTKFS_BENCH_XATTR_SECONDS  idle and compaction sampling time (default 5)
  DTKFS_BENCH_DISK     size of each target's loop file (default 16G, sparse; mergerfs's
                       minfreespace, 4G, must stay free on it)
  DTKFS_BENCH_UNTRACKED_OPTS  the dtkfs -o options of the untracked column (default
                       track_sizes=off,kernel_cache=on: no counting, the same kernel caching)
  DTKFS_BENCH_COMMIT   how the section names the measured binary (run.sh sets it)
  DTKFS_BENCH_DOC      write the section into this copy instead (default docs/benchmarks.md)
"""
import gc
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
from benchlib import clean_leftovers, force_unmount, loadavg, out, run, tree_bytes, write_section  # noqa: E402,E501

REPO, DTKFS, WORK, TARBALL = sys.argv[1:5]
ROUNDS = int(sys.argv[5])
PARTS = os.environ.get("DTKFS_BENCH_PARTS", "fs include lib kernel net mm").split()
WHOLE = os.environ.get("DTKFS_BENCH_WHOLE", "1") != "0"
ALL_GROUPS = "tree whole walk git seq fio append xattr".split()
GROUPS = os.environ.get("DTKFS_BENCH_ONLY", " ".join(ALL_GROUPS)).split()
if not WHOLE and "whole" in GROUPS:
    GROUPS.remove("whole")
SEQ_MIB = int(os.environ.get("DTKFS_BENCH_SEQ_MIB", "1024"))
FIO_MIB = int(os.environ.get("DTKFS_BENCH_FIO_MIB", "128"))
FIO_JOBS = int(os.environ.get("DTKFS_BENCH_FIO_JOBS", "4"))
FIO_SECONDS = int(os.environ.get("DTKFS_BENCH_FIO_SECONDS", "10"))
APPENDS = int(os.environ.get("DTKFS_BENCH_APPENDS", "100000"))
XATTR_SECONDS = float(os.environ.get("DTKFS_BENCH_XATTR_SECONDS", "5"))
DISK = os.environ.get("DTKFS_BENCH_DISK", "16G")

# The peers' options, from their own documentation (stated in the section as given here).
# mergerfs 2.33 README, "BASIC SETUP", the set for programs that do not need shared mmap
# (its "for the average person" set in the FAQ too); its default is cache.files=libfuse.
MERGERFS_OPTS = "allow_other,use_ino,cache.files=off,dropcacheonclose=true,category.create=mfs"
# bindfs(1): --multithreaded is its one option about speed (off by default since 1.11).
BINDFS_OPTS = ["--multithreaded"]
# Size tracking off, with the kernel caching a tracked mount gets from its fanotify watcher
# (kernel_cache=on): the two then make the same requests, so the column measures counting
# alone (with tracking off nothing watches the source, and kernel_cache=auto would cache 1 s).
UNTRACKED_OPTS = os.environ.get("DTKFS_BENCH_UNTRACKED_OPTS", "track_sizes=off,kernel_cache=on")

TARGETS = ["native", "bindfs", "mergerfs", "dtkfs", "untracked"]
LABEL = {"native": "native ext4", "bindfs": "bindfs", "mergerfs": "mergerfs", "dtkfs": "dtkfs",
         "untracked": "dtkfs, track_sizes=off,kernel_cache=on"}
TREE = "linux-source-6.1"

# key: (group, label, unit); unit "s" is lower-better, the others higher-better.
WORKLOADS = {
    "extract": ("tree", "extract the subset (`tar -x`)", "s"),
    "walk-du-cold": ("walk", "first walk, cold cache: `du -sb`", "s"),
    "walk-du": ("walk", "repeat walk: `du -sb`", "s"),
    "walk-stat-cold": ("walk", "first walk, cold cache: `find \\| xargs stat`", "s"),
    "walk-stat": ("walk", "repeat walk: `find \\| xargs stat`", "s"),
    "rm": ("tree", "remove the subset (`rm -rf`)", "s"),
    "extract-whole": ("whole", "extract the whole tree (`tar -x`)", "s"),
    "rm-whole": ("whole", "remove the whole tree (`rm -rf`)", "s"),
    "git-cold": ("git", "`git status`, cold cache", "s"),
    "git": ("git", "`git status`, repeated", "s"),
    "seq-write": ("seq", f"sequential write, {SEQ_MIB:,} MiB (dd bs=1M conv=fsync)", "MiB/s"),
    "seq-read": ("seq", f"sequential read, {SEQ_MIB:,} MiB, cold cache (dd bs=1M)", "MiB/s"),
    "fio-randwrite": ("fio", f"fio 4 KiB random write, {FIO_JOBS} jobs", "IOPS"),
    "fio-randread": ("fio", f"fio 4 KiB random read, {FIO_JOBS} jobs", "IOPS"),
    "append": ("append", f"{APPENDS:,} appends of 100 bytes (open, write, close)", "s"),
}

mounted_fuse = []   # FUSE mount points, unmounted in reverse order
mounted_loop = []   # the targets' loop filesystems
children = []       # background processes this script started (killed by pid)


def say(msg):
    print(f"run_bench: {msg}", file=sys.stderr, flush=True)


def drop_caches():
    run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed(argv, cwd=None, shell=False):
    run(["sync"])
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=cwd, shell=shell)
    return time.perf_counter() - t0


class Target:
    def __init__(self, name):
        self.name = name
        self.fs = os.path.join(WORK, f"fs-{name}")           # its own loop ext4
        self.src = os.path.join(self.fs, "src")               # what a passthrough serves
        self.dir = self.src if name == "native" else os.path.join(self.fs, "mnt")
        self.available = True
        self.why = ""                                         # why not available

    def path(self, *parts):
        return os.path.join(self.dir, *parts)


def unmount_all():
    for m in reversed(mounted_fuse):
        if os.path.ismount(m) and os.path.basename(os.path.dirname(m)) in ("fs-dtkfs", "fs-untracked"):
            subprocess.run([DTKFS, "umount", m], stderr=subprocess.DEVNULL)
        force_unmount(m)
    mounted_fuse.clear()
    for m in reversed(mounted_loop):
        if os.path.ismount(m) and subprocess.run(["umount", m], stderr=subprocess.DEVNULL).returncode:
            subprocess.run(["umount", "-l", m])
    mounted_loop.clear()


def stop_children():
    for p in children:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)  # its own session: the loop and what it runs
            except ProcessLookupError:
                pass
            p.wait()
    children.clear()


def remove_scratch():
    """Removes the loop files and tarballs (tens of GB), keeping results.json; only when nothing
    is mounted under WORK any more."""
    if any(l.split()[1].startswith(WORK + "/") for l in open("/proc/self/mounts")):
        say(f"something is still mounted under {WORK}: its files are left in place")
        return
    for e in os.listdir(WORK) if os.path.isdir(WORK) else []:
        if e != "results.json":
            subprocess.run(["rm", "-rf", os.path.join(WORK, e)])


def make_fs(t):
    img = t.fs + ".img"
    run(["truncate", "-s", DISK, img])
    run(["mkfs.ext4", "-q", "-F", img])
    os.makedirs(t.fs)
    run(["mount", "-o", "loop", img, t.fs])
    mounted_loop.append(t.fs)
    os.makedirs(t.src)
    if t.dir != t.src:
        os.makedirs(t.dir)


def mount(t):
    if t.name == "bindfs":
        run(["bindfs"] + BINDFS_OPTS + [t.src, t.dir])
    elif t.name == "mergerfs":
        run(["mergerfs", "-o", MERGERFS_OPTS, t.src, t.dir])
    elif t.name in ("dtkfs", "untracked"):
        argv = [DTKFS, "mount", t.src, t.dir]
        if t.name == "untracked":
            argv += ["-o", UNTRACKED_OPTS]
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode:
            if t.name == "untracked" and "unknown option" in p.stderr:
                t.available, t.why = False, "n/a (option missing)"
                say(f"dtkfs -o {UNTRACKED_OPTS}: refused ({p.stderr.strip().splitlines()[0]}); "
                    "that column is n/a")
                return
            raise RuntimeError(f"mount {t.name}: {p.stderr.strip()}")
    else:
        return
    mounted_fuse.append(t.dir)


def rotated(r, targets):
    k = r % len(targets)
    return targets[k:] + targets[:k]


def fio(t, rw):
    d = t.path("fio")
    os.makedirs(d, exist_ok=True)
    argv = ["fio", "--name=bench", f"--directory={d}", "--filename_format=f.$jobnum",
            f"--rw={rw}", "--bs=4k", f"--size={FIO_MIB}M", f"--numjobs={FIO_JOBS}",
            f"--runtime={FIO_SECONDS}", "--time_based", "--ioengine=psync", "--group_reporting",
            "--output-format=json"]
    if rw == "randwrite":
        argv.append("--end_fsync=1")
    run(["sync"])
    res = json.loads(out(argv))
    job = res["jobs"][0]
    return job["write" if rw == "randwrite" else "read"]["iops"]


APPEND_PY = ("import sys\nn, p = int(sys.argv[1]), sys.argv[2]\nb = b'x' * 100\n"
             "for _ in range(n):\n    with open(p, 'ab') as f:\n        f.write(b)\n")


def pct(v, q):
    s = sorted(v)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def sample_xattr(probes, until, pace=0.0005):
    """getxattr of each (path, name) in probes, in turn, each after a pause of `pace` seconds
    (so every call finds the daemon as a lone query would), until until() is true; per-call
    times in µs per probe."""
    got = {k: [] for k in probes}
    gc.disable()
    try:
        while not until():
            for k, (p, name) in probes.items():
                time.sleep(pace)
                t0 = time.perf_counter_ns()
                os.getxattr(p, name)
                got[k].append((time.perf_counter_ns() - t0) / 1000)
    finally:
        gc.enable()
    return got


def main():
    clean_leftovers(WORK)
    T = {n: Target(n) for n in TARGETS}
    load_start = loadavg()
    t_start = time.time()

    # The tarballs, uncompressed beforehand: the whole tree and the subset of PARTS.
    tars = os.path.join(WORK, "tars")
    os.makedirs(tars)
    whole_tar, subset_tar = os.path.join(tars, "linux.tar"), os.path.join(tars, "subset.tar")
    say("uncompressing the kernel tarball")
    with open(whole_tar, "wb") as f:
        run(["xz", "-dc", TARBALL], stdout=f)
    stage = os.path.join(WORK, "stage")
    os.makedirs(stage)
    run(["tar", "-xf", whole_tar, "-C", stage] + [f"{TREE}/{p}" for p in PARTS])
    run(["tar", "-cf", subset_tar, "-C", stage, TREE])
    entries = {"subset": int(out(["sh", "-c", f"tar -tf {subset_tar} | wc -l"])),
               "whole": int(out(["sh", "-c", f"tar -tf {whole_tar} | wc -l"]))}

    # The git checkout: the subset committed once, copied into every source before mounting.
    repo = os.path.join(stage, "repo")
    os.makedirs(repo)
    run(["tar", "-xf", subset_tar, "-C", repo])
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    if "git" in GROUPS or "xattr" in GROUPS:
        run(git + ["-C", repo, "init", "-q"])
        run(git + ["-C", repo, "add", "-A"])
        run(git + ["-C", repo, "commit", "-q", "-m", "subset"])
    # A regular file at the greatest depth: the leaf of the getxattr probes.
    leaf = max((os.path.relpath(os.path.join(dp, f), stage)
                for dp, _, files in os.walk(os.path.join(repo, TREE)) for f in sorted(files)
                if os.path.isfile(os.path.join(dp, f)) and not os.path.islink(os.path.join(dp, f))),
               key=lambda p: (p.count("/"), p))

    say("making one loop ext4 per target and mounting")
    for t in T.values():
        make_fs(t)
        run(["cp", "-a", repo, t.src])
    run(["rm", "-rf", stage])
    os.environ["XDG_STATE_HOME"] = os.path.join(WORK, "state")  # dtkfs's indexes
    for t in T.values():
        mount(t)
    live = [n for n in TARGETS if T[n].available]
    if "git" in GROUPS:  # the first status through a mount rewrites the index's stat data
        for n in live:
            for _ in range(2):
                run(["git", "-C", T[n].path("repo"), "status", "--short"], stdout=subprocess.DEVNULL)

    res = {w: {n: [] for n in TARGETS} for w in WORKLOADS if WORKLOADS[w][0] in GROUPS}
    exact = []
    lat = {}  # (condition, target, node) -> [µs]
    compactions = []

    def rec(w, n, v):
        res[w][n].append(v)
        unit = WORKLOADS[w][2]
        say(f"  {w} {n}: {v:.3f} {unit}")

    for r in range(ROUNDS):
        order = rotated(r, live)
        say(f"round {r + 1}/{ROUNDS}, order {' '.join(order)}")
        if "tree" in GROUPS or "walk" in GROUPS:
            for n in order:
                os.makedirs(T[n].path("t"), exist_ok=True)
                v = timed(["tar", "-xf", subset_tar, "-C", T[n].path("t")])
                if "tree" in GROUPS:
                    rec("extract", n, v)
                if n == "dtkfs":
                    root = T[n].path("t", TREE)
                    got = int(out(["getfattr", "--only-values", "-n", "user.total_bytes", root]))
                    exact.append(got == tree_bytes(os.path.join(T[n].src, "t", TREE)))
            if "walk" in GROUPS:
                for w, cmd in (("walk-du", "du -sb ."), ("walk-stat", "find . -print0 | xargs -0 stat")):
                    for n in order:
                        drop_caches()
                        rec(w + "-cold", n, timed(cmd, cwd=T[n].path("t", TREE), shell=True))
                        rec(w, n, timed(cmd, cwd=T[n].path("t", TREE), shell=True))
            for n in order:
                v = timed(["rm", "-rf", T[n].path("t")])
                if "tree" in GROUPS:
                    rec("rm", n, v)
        if "whole" in GROUPS:
            for n in order:
                os.makedirs(T[n].path("w"), exist_ok=True)
                rec("extract-whole", n, timed(["tar", "-xf", whole_tar, "-C", T[n].path("w")]))
            for n in order:
                rec("rm-whole", n, timed(["rm", "-rf", T[n].path("w")]))
        if "git" in GROUPS:
            for n in order:
                drop_caches()
                rec("git-cold", n, timed(["git", "-C", T[n].path("repo"), "status", "--short"]))
                rec("git", n, timed(["git", "-C", T[n].path("repo"), "status", "--short"]))
        if "seq" in GROUPS:
            for n in order:
                s = timed(["dd", "if=/dev/zero", f"of={T[n].path('seq.bin')}", "bs=1M",
                           f"count={SEQ_MIB}", "conv=fsync", "status=none"])
                rec("seq-write", n, SEQ_MIB / s)
            for n in order:
                drop_caches()
                s = timed(["dd", f"if={T[n].path('seq.bin')}", "of=/dev/null", "bs=1M", "status=none"])
                rec("seq-read", n, SEQ_MIB / s)
            for n in order:
                os.unlink(T[n].path("seq.bin"))
        if "fio" in GROUPS:
            for n in order:
                rec("fio-randwrite", n, fio(T[n], "randwrite"))
            for n in order:
                rec("fio-randread", n, fio(T[n], "randread"))
            for n in order:
                run(["rm", "-rf", T[n].path("fio")])
        if "append" in GROUPS:
            for n in order:
                p = T[n].path("appends.log")
                rec("append", n, timed(["/usr/bin/python3", "-c", APPEND_PY, str(APPENDS), p]))
                if os.path.getsize(p) != APPENDS * 100:
                    raise RuntimeError(f"appends on {n}: {os.path.getsize(p)} bytes")
                os.unlink(p)
        if "xattr" in GROUPS:
            xattr_round(T, rotated(r, [n for n in ("dtkfs", "untracked", "mergerfs") if T[n].available]),
                        subset_tar, leaf, lat, compactions)

    unmount_all()
    t_end = time.time()
    results = {"workloads": res, "exact": exact, "latency_us": {"|".join(k): v for k, v in lat.items()},
               "compactions": compactions, "entries": entries}
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump(results, f)
    section = report(T, res, exact, lat, compactions, entries, leaf, load_start, loadavg(),
                     (t_end - t_start) / 60)
    if set(GROUPS) >= set(ALL_GROUPS) - ({"whole"} if not WHOLE else set()):
        doc = os.environ.get("DTKFS_BENCH_DOC")
        write_section(REPO, "speed-bench", section, doc=doc)
        write_chart(T, res, os.path.join(os.path.dirname(doc) if doc else os.path.join(REPO, "docs"),
                                         "benchmarks-speed.svg"))
    else:
        say("not every workload ran: the section is printed, not written")
    print(section)


XATTR_NAME = {"dtkfs": "user.total_bytes", "untracked": "user.total_bytes",
              "mergerfs": "user.mergerfs.basepath"}


def xattr_round(T, order, subset_tar, leaf, lat, compactions):
    for n in order:
        t = T[n]
        probes = {"root": (t.dir, XATTR_NAME[n]), "leaf": (t.path(leaf), XATTR_NAME[n])}
        try:
            for p, name in probes.values():
                os.getxattr(p, name)
        except OSError as e:
            say(f"xattr: {n} does not answer {XATTR_NAME[n]} ({e.strerror}); skipped")
            continue

        def keep(cond, got):
            for node, v in got.items():
                lat.setdefault((cond, n, node), []).extend(v)

        end = time.monotonic() + XATTR_SECONDS
        keep("idle", sample_xattr(probes, lambda: time.monotonic() > end))
        os.makedirs(t.path("lat"), exist_ok=True)
        tar = subprocess.Popen(["tar", "-xf", subset_tar, "-C", t.path("lat")], start_new_session=True)
        children.append(tar)
        keep("extract", sample_xattr(probes, lambda: tar.poll() is not None))
        children.remove(tar)
        if tar.returncode:
            raise RuntimeError(f"tar during the xattr probes on {n}: exit {tar.returncode}")
        run(["rm", "-rf", t.path("lat")])
        if n in ("dtkfs", "untracked"):
            # Something to fold every time: one append, then a compaction, in a loop.
            loop = subprocess.Popen(
                ["sh", "-c", 'while :; do echo x >> "$1/compact-probe"; "$2" compact "$1" >/dev/null 2>&1 '
                 '&& echo done; done', "sh", t.dir, DTKFS], stdout=subprocess.PIPE, text=True,
                start_new_session=True)
            children.append(loop)
            end = time.monotonic() + XATTR_SECONDS
            keep("compact", sample_xattr(probes, lambda: time.monotonic() > end))
            os.killpg(loop.pid, signal.SIGTERM)
            done = loop.stdout.read().count("done")
            loop.wait()
            children.remove(loop)
            compactions.append((n, done))
            os.unlink(t.path("compact-probe"))
        say(f"  xattr {n}: done")


# --- the report ------------------------------------------------------------------------------

def fmt_value(v, unit):
    if v is None:
        return "n/a"
    if unit == "s":
        return f"{v:.3f} s" if v < 1 else f"{v:.2f} s"
    if unit == "IOPS":
        return f"{v / 1000:.1f}k IOPS" if v >= 1000 else f"{v:.0f} IOPS"
    return f"{v:.0f} {unit}"


def speed(w, a, b):
    """How many times as fast a is as b (higher: a faster), from medians."""
    if a is None or b is None:
        return None
    return b / a if WORKLOADS[w][2] == "s" else a / b


def medians(res):
    return {w: {n: (statistics.median(v) if v else None) for n, v in by.items()} for w, by in res.items()}


def faster_peer(w, m):
    peers = [m[w][p] for p in ("bindfs", "mergerfs") if m[w][p] is not None]
    if not peers:
        return None
    return min(peers) if WORKLOADS[w][2] == "s" else max(peers)


def x(v):
    return "n/a" if v is None else f"{v:.2f}x"


def verdict(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def report(T, res, exact, lat, compactions, entries, leaf, load_start, load_end, minutes):
    m = medians(res)
    untracked = T["untracked"]
    un_cell = untracked.why or None
    s = ["<!-- speed-bench:begin (generated by bench/run.sh; edits here are overwritten) -->",
         "## Speed: every workload against native and the other passthroughs", ""]
    commit = os.environ.get("DTKFS_BENCH_COMMIT") or \
        "`" + out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).strip() + "`"
    versions = "; ".join([out(["bindfs", "--version"]).split("\n")[0],
                          out(["mergerfs", "--version"]).split("\n")[0].replace(" version:", ""),
                          out(["fio", "--version"]).strip(),
                          out(["git", "--version"]).strip()])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20
    s += [f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, dtkfs {commit} built Release, "
          f"{minutes:.0f} minute{'s' if round(minutes) != 1 else ''}. {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Linux "
          f"{platform.release()}; {versions}. Load average at the start {load_start}, at the end "
          f"{load_end}" + (f"; run with DTKFS_BENCH_NICE={os.environ['DTKFS_BENCH_NICE']}"
                          if os.environ.get("DTKFS_BENCH_NICE") else "") + f". {ROUNDS} round{'s' if ROUNDS != 1 else ''}; in each, every workload runs on every target, the targets in "
          "an order rotated per round; `sync` before every timed step. Every target has its own fresh "
          f"journaled ext4 in a loop file ({DISK}, sparse, one per target, so dtkfs's fanotify "
          "watcher sees only its own filesystem).", "",
          "How each target runs (options exactly as given):", "",
          "- native ext4: the loop filesystem itself;",
          f"- bindfs: `bindfs {' '.join(BINDFS_OPTS)} SRC MNT` (bindfs(1): its one option for speed; "
          "single-threaded is its default);",
          f"- mergerfs: `mergerfs -o {MERGERFS_OPTS} SRC MNT`, the README's basic setup for programs "
          "that need no shared mmap (also its FAQ's set \"for the average person\"). Its defaults "
          "differ: `cache.files=libfuse` (not `off`), `dropcacheonclose=false`, "
          "`category.create=epmfs`. `func.getattr=newest` is for several branches, not speed, "
          "so it is not set;",
          "- dtkfs: `dtkfs mount SRC MNT` (defaults);",
          f"- dtkfs with size tracking off: `dtkfs mount SRC MNT -o {UNTRACKED_OPTS}`"
          + (f": **{untracked.why}** in this binary (the mount refused it), so its column is empty;"
             if untracked.why else ";"), ""]
    what = f"the directories {', '.join(PARTS)} of the Linux 6.1 source tarball"
    s += [f"Trees: the subset is {what}, {entries['subset']:,} entries; the whole tree "
          f"{entries['whole']:,} entries" + ("" if "whole" in GROUPS else " (not run this time)") +
          "; both uncompressed beforehand. The git checkout is the subset, committed once and "
          "copied into every source before mounting.", ""]
    s += ["### Workloads", "",
          "Medians; seconds (lower is better) or throughput (higher is better). The ratios are "
          "speeds: above 1.00x dtkfs is faster than the other. \"faster peer\": the faster of "
          "bindfs and mergerfs for that workload; \"dtkfs / untracked\": the cost of size tracking "
          "(1.00x: none).", "",
          "| workload | native | bindfs | mergerfs | dtkfs | dtkfs, untracked | dtkfs vs native "
          "| dtkfs vs faster peer | dtkfs vs untracked |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for w in res:
        unit = WORKLOADS[w][2]
        cells = [fmt_value(m[w][n], unit) if T[n].available else un_cell for n in TARGETS]
        s.append(f"| {WORKLOADS[w][1]} | " + " | ".join(cells) + " | "
                 f"{x(speed(w, m[w]['dtkfs'], m[w]['native']))} | "
                 f"{x(speed(w, m[w]['dtkfs'], faster_peer(w, m)))} | "
                 f"{x(speed(w, m[w]['dtkfs'], m[w]['untracked']))} |")
    s += ["", "Chart: speed of each passthrough relative to native ext4 (1.0 = native; log scale).", "",
          "![speed relative to native](benchmarks-speed.svg)", ""]
    if exact:
        s += [f"After every extraction of the subset on dtkfs, `user.total_bytes` of the extracted "
              f"root equalled a walk of the source: {sum(exact)} of {len(exact)} times.", ""]
    s += [f"fio: `--rw=randwrite` then `--rw=randread` on the same files, `--bs=4k "
          f"--size={FIO_MIB}M --numjobs={FIO_JOBS} --runtime={FIO_SECONDS} --time_based "
          "--ioengine=psync --group_reporting` (randwrite with `--end_fsync=1`); the reads find "
          "the files the writes left, page cache as it is. Appends: one Python process opens the "
          "file with `O_APPEND`, writes 100 bytes and closes it, each time.", ""]

    # getxattr latency.
    s += ["### Size queries: getxattr latency per call", "",
          f"`os.getxattr` from Python in a loop, each call timed, calls on root and leaf in turn, 0.5 ms "
          f"apart (so each finds the daemon as a lone query would): the mount's root and the file `{leaf}` of the checkout. dtkfs: "
          "`user.total_bytes`; mergerfs: `user.mergerfs.basepath`, which mergerfs answers itself. "
          f"Idle: {XATTR_SECONDS:g} s; during an extraction: while `tar -x` of the subset runs "
          f"into the same mount; during compaction: {XATTR_SECONDS:g} s of a loop of one append "
          "and `dtkfs compact MNT`"
          + (f" ({sum(c for n, c in compactions if n == 'dtkfs')} compactions on dtkfs in all)"
             if compactions else "") + ". Samples of all rounds together; µs.", "",
          "| condition | node | dtkfs p50 | dtkfs p99 | mergerfs p50 | mergerfs p99 | untracked p50 "
          "| untracked p99 | calls (dtkfs) |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for cond in ("idle", "extract", "compact"):
        for node in ("root", "leaf"):
            cells = []
            for n in ("dtkfs", "mergerfs", "untracked"):
                v = lat.get((cond, n, node))
                cells += [f"{pct(v, .5):.1f}", f"{pct(v, .99):.1f}"] if v else ["n/a", "n/a"]
            calls = len(lat.get((cond, "dtkfs", node), []))
            label = {"idle": "idle", "extract": "during an extraction", "compact": "during compaction"}[cond]
            s.append(f"| {label} | {node} | " + " | ".join(cells) + f" | {calls:,} |")
    s += [""]

    # Goals.
    s += ["### Goals (issue \"Speed: close to native\"), judged on the medians", "",
          "| goal | workload | figure | verdict |", "|---|---|---:|---|"]
    for w in res:
        v = speed(w, m[w]["dtkfs"], faster_peer(w, m))
        s.append(f"| at least 1.0x the faster of bindfs and mergerfs | {WORKLOADS[w][1]} | {x(v)} | "
                 f"{verdict(None if v is None else v >= 1.0)} |")
    for w, need in (("extract", .5), ("rm", .5), ("extract-whole", .5), ("rm-whole", .5),
                    ("walk-du", .5), ("walk-stat", .5), ("seq-write", .8), ("seq-read", .8)):
        if w in res:
            v = speed(w, m[w]["dtkfs"], m[w]["native"])
            s.append(f"| at least {need}x native | {WORKLOADS[w][1]} | {x(v)} | "
                     f"{verdict(None if v is None else v >= need)} |")
    if not untracked.available:
        s.append(f"| size tracking costs at most 5% (at least 0.95x untracked) | every workload | "
                 f"{untracked.why} | n/a |")
    for w in (res if untracked.available else []):
        v = speed(w, m[w]["dtkfs"], m[w]["untracked"])
        s.append(f"| size tracking costs at most 5% (at least 0.95x untracked) | {WORKLOADS[w][1]} | "
                 f"{x(v) if v is not None else (untracked.why or 'n/a')} | "
                 f"{verdict(None if v is None else v >= 0.95)} |")
    for cond in ("idle", "extract"):
        for node in ("root", "leaf"):
            d, g = lat.get((cond, "dtkfs", node)), lat.get((cond, "mergerfs", node))
            if d and g:
                ok = pct(d, .5) <= pct(g, .5)
                s.append(f"| size getxattr no slower than mergerfs's own xattr (p50) | {cond}, {node} | "
                         f"{pct(d, .5):.1f} vs {pct(g, .5):.1f} µs | {verdict(ok)} |")
    for cond in ("extract", "compact"):
        for node in ("root", "leaf"):
            d = lat.get((cond, "dtkfs", node))
            if d:
                s.append(f"| size getxattr p99 under 1 ms | {cond}, {node} | {pct(d, .99) / 1000:.2f} ms | "
                         f"{verdict(pct(d, .99) < 1000)} |")
    s += ["", "Raw results: `$DTKFS_BENCH_DIR/speed/results.json`.", "<!-- speed-bench:end -->"]
    return "\n".join(s) + "\n"


def write_chart(T, res, path):
    """A horizontal bar chart, hand-written SVG: each workload's speed relative to native, one
    bar per passthrough, log scale."""
    import math
    m = medians(res)
    series = [("bindfs", "#b0b0b0"), ("mergerfs", "#6f8fb8"), ("dtkfs", "#d9822b"),
              ("untracked", "#f2c18d")]
    lo, hi = 0.01, 8.0
    left, width, bar, gap, top = 330, 520, 9, 12, 60
    xs = lambda v: left + width * (math.log10(max(lo, min(hi, v))) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    rows = list(res)
    height = top + len(rows) * (len(series) * bar + gap) + 40
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 30}" height="{height}" '
         'font-family="sans-serif" font-size="11">',
         '<rect width="100%" height="100%" fill="white"/>',
         f'<text x="10" y="18" font-size="14" font-weight="bold">Speed relative to native ext4 '
         f'(medians of {ROUNDS} rounds; 1 = native, higher is faster; log scale)</text>']
    for i, (n, c) in enumerate(series):
        o.append(f'<rect x="{10 + i * 170}" y="30" width="12" height="12" fill="{c}"/>'
                 f'<text x="{26 + i * 170}" y="40">{LABEL[n]}'
                 f'{" (" + T[n].why + ")" if not T[n].available else ""}</text>')
    for g in (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8):
        gx = xs(g)
        o.append(f'<line x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{height - 30}" '
                 f'stroke="{"#333" if g == 1 else "#ddd"}" stroke-width="1"/>'
                 f'<text x="{gx:.1f}" y="{height - 16}" text-anchor="middle">{g:g}</text>')
    y = top
    for w in rows:
        label = re.sub(r"[`\\]", "", WORKLOADS[w][1])
        label = label.replace("&", "&amp;").replace("<", "&lt;")
        o.append(f'<text x="{left - 6}" y="{y + len(series) * bar / 2 + 4:.1f}" text-anchor="end">{label}</text>')
        for i, (n, c) in enumerate(series):
            v = speed(w, m[w][n], m[w]["native"]) if m[w][n] is not None else None
            if v is not None:
                o.append(f'<rect x="{left}" y="{y + i * bar}" width="{xs(v) - left:.1f}" '
                         f'height="{bar - 1}" fill="{c}"><title>{LABEL[n]}: {v:.3f}x</title></rect>')
        y += len(series) * bar + gap
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the mounts are cleaned up
    signal.signal(signal.SIGINT, lambda *_: sys.exit(1))
    try:
        main()
    finally:
        stop_children()
        unmount_all()
        remove_scratch()
