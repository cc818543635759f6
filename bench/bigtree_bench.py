#!/usr/bin/env python3
"""The big-trees benchmark (issue "big trees"): dtkfs on a tree of 10,000,000 files in about
1,000,000 directories, beside native ext4 and mergerfs, in one run of under 45 minutes on a
2-core VM. Run it through bench/bigtree_bench.sh, which makes a fresh scratch ext4 with inodes
enough and builds first.

  0. tree, made once: FILES empty files, 10 per directory, shaped SRC/gG/dD/mMMM/lLL/fF (10 d
     per g, M m per d, 100 l per m; M = 300 at 10,000,000 files, scaled with FILES), so a d is
     a ~30,300-directory subtree, a g a ~303,000-directory one, and the last g (g3) holds the
     last tenth of the files. The first file of each leaf directory is sparse with a size (1 to
     1,000 bytes), so the byte totals mean something; a few files have a second name (hard
     links), some across the renamed subtrees.
  1. scan and mount: the first mount (no index: it scans), timed, page cache dropped before;
     the mount process's peak RSS (wait4's ru_maxrss: the scan runs in it, before it
     daemonises), the daemon's VmHWM/VmRSS, its RLIMIT_NOFILE as /proc/PID/limits says. Then
     one remount from the index (cache dropped), timed, and its background verification,
     waited for.
  2. peers: `find DIR | wc -l` and `du -sb DIR` of the part g3 (1/10 of the tree), after
     `sync; echo 3 > drop_caches`, on native (SRC/g3), mergerfs (`-o cache.files=off`, as
     bench/mount_bench.py) and dtkfs, both mounted on the whole SRC and walked in g3 through
     their mount; ROUNDS rounds, the targets rotating in each.
  3. the full walk: `find MNT | wc -l` and `du -sb MNT` of the whole tree, one round, dtkfs
     and native (for the ratio), cache dropped before each. While dtkfs is walked its daemon's
     VmRSS and open descriptors are sampled every 0.2 s (max values); VmRSS right before and
     after the walk (the kernel still knowing the walked inodes), and `dtkfs status`'s
     descriptor lines after it. Errors of the walk (stderr lines, exit status) are counted.
  4. rename: `mv` of a d (~30k directories) and of a g (~300k) to another parent and back
     through the dtkfs mount, while another process calls getxattr(user.total_bytes) on g2,
     outside them, back to back; the rename's time, the worst and p99 getxattr latency during
     it, the totals checked against the tree's known ones right after, and `rename_levels`.
  5. compact: `dtkfs compact MNT` on what the renames left, then after one append through the
     mount, timed, with the daemon's peak RSS around each (VmHWM reset through
     /proc/PID/clear_refs first).

The daemon always runs under `prlimit --nofile=1024:1024` (inherited by the daemon it forks),
with its default options. Prints the section; writes it between the bigtree-bench markers of
docs/benchmarks.md when DTKFS_BENCH_WRITE is 1 (default: only at the default size). Raw
results: DTKFS_BENCH_DIR/bigtree-results.json.
Arguments: REPO DTKFS_BINARY WORK_DIR ROUNDS FILES
"""
import array
import concurrent.futures
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import dtkfs_status, force_unmount, loadavg, out, run, write_section  # noqa: E402

REPO, DTKFS, WORK = sys.argv[1:4]
ROUNDS, FILES = int(sys.argv[4]), int(sys.argv[5])
DEFAULT_FILES = 10_000_000
WRITE = os.environ.get("DTKFS_BENCH_WRITE", "1" if FILES == DEFAULT_FILES else "0") == "1"
NOFILE = 1024
PRLIMIT = ["prlimit", f"--nofile={NOFILE}:{NOFILE}"]
SRC, MNT, MERGER = (os.path.join(WORK, n) for n in ("src", "mnt", "mergerfs"))
INDEX = os.path.join(WORK, "index", "tree.dtkidx")
SAMPLE_PERIOD = 0.2
mounted = []
problems = []  # wrong totals, dead daemons, failed commands: printed and written into the section
LOG = None


def say(msg):
    print(f"bigtree_bench {time.strftime('%H:%M:%S')}: {msg}", file=sys.stderr, flush=True)


def problem(msg):
    problems.append(msg)
    say("PROBLEM: " + msg)


# ---- the tree ------------------------------------------------------------------------------

class Shape:
    """Where leaf directory k (10 files each) lives: g = k // (D*M*L), d, m, l below it."""
    PER_DIR, D, L = 10, 10, 100

    def __init__(self, files):
        self.files = files
        self.M = max(1, round(300 * files / DEFAULT_FILES))
        self.leaves = (files + self.PER_DIR - 1) // self.PER_DIR
        self.per_d = self.M * self.L
        self.per_g = self.D * self.per_d
        self.groups = (self.leaves + self.per_g - 1) // self.per_g
        self.cache = {}

    def leaf_path(self, k):
        g, d, m, l = k // self.per_g, k // self.per_d % self.D, k // self.L % self.M, k % self.L
        return f"g{g}/d{d}/m{m:03d}/l{l:02d}"

    def leaf_files(self, k):
        return min(self.PER_DIR, self.files - k * self.PER_DIR)

    @staticmethod
    def size(k):  # of the leaf's first file (sparse)
        return k % 1000 + 1

    def leaf_range(self, rel):
        """The leaves below the directory rel ("" for the root, "g1", "g0/d0")."""
        parts = [p for p in rel.split("/") if p]
        if not parts:
            return 0, self.leaves
        g = int(parts[0][1:])
        if len(parts) == 1:
            lo, n = g * self.per_g, self.per_g
        else:
            lo, n = g * self.per_g + int(parts[1][1:]) * self.per_d, self.per_d
        return lo, min(lo + n, self.leaves)

    def totals(self, rel, links):
        """(bytes, files, dirs strictly below) of SRC/rel, links included: what dtkfs must say."""
        key = (rel, tuple(links))
        if key not in self.cache:
            self.cache[key] = self.count(rel, links)
        return self.cache[key]

    def count(self, rel, links):
        lo, hi = self.leaf_range(rel)
        depth = len([p for p in rel.split("/") if p])
        nbytes = sum(self.size(k) for k in range(lo, hi))
        files = sum(self.leaf_files(k) for k in range(lo, hi))
        mids = len({k // self.L for k in range(lo, hi)})
        dirs = (hi - lo) + mids
        if depth <= 1:
            dirs += len({k // self.per_d for k in range(lo, hi)})
        if depth == 0:
            dirs += self.groups + 1  # the g directories and links/
        for name, size in links:
            if rel == "" or name.startswith(rel + "/"):
                nbytes, files = nbytes + size, files + 1
        return nbytes, files, dirs


def make_leaves(root, shape, units):
    """Makes the m and l directories and the files of the d directories in units."""
    made = 0
    for unit in units:
        lo = unit * shape.per_d
        hi = min(lo + shape.per_d, shape.leaves)
        dfd = os.open(os.path.join(root, shape.leaf_path(lo).rsplit("/", 2)[0]), os.O_RDONLY | os.O_DIRECTORY)
        mfd = -1
        for k in range(lo, hi):
            m, l = k // shape.L % shape.M, k % shape.L
            if l == 0:
                if mfd >= 0:
                    os.close(mfd)
                os.mkdir(f"m{m:03d}", 0o755, dir_fd=dfd)
                mfd = os.open(f"m{m:03d}", os.O_RDONLY | os.O_DIRECTORY, dir_fd=dfd)
            name = f"l{l:02d}"
            os.mkdir(name, 0o755, dir_fd=mfd)
            lfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=mfd)
            n = shape.leaf_files(k)
            fd = os.open("f0", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644, dir_fd=lfd)
            os.ftruncate(fd, shape.size(k))
            os.close(fd)
            for f in range(1, n):
                os.mknod(f"f{f}", 0o100644, dir_fd=lfd)
            os.close(lfd)
            made += n
        if mfd >= 0:
            os.close(mfd)
        os.close(dfd)
    return made


def make_tree(shape):
    """Makes the tree in SRC with two processes; returns the hard links [(rel path, size)]."""
    os.makedirs(SRC)
    units = (shape.leaves + shape.per_d - 1) // shape.per_d
    for u in range(units):
        os.makedirs(os.path.join(SRC, shape.leaf_path(u * shape.per_d).rsplit("/", 2)[0]))
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        made = sum(f.result() for f in [ex.submit(make_leaves, SRC, shape, range(k, units, 2)) for k in range(2)])
    if made != shape.files:
        raise RuntimeError(f"made {made} files, wanted {shape.files}")
    # A few second names: in links/, and inside the renamed subtrees for files outside them.
    os.makedirs(os.path.join(SRC, "links"))
    first = lambda g, d=0: g * shape.per_g + d * shape.per_d  # noqa: E731
    pairs = [(f"links/h{g}", first(g)) for g in range(min(4, shape.groups))]
    pairs += [(f"{shape.leaf_path(first(0))}/x0", first(2)),   # in the 30k rename, to g2
              (f"{shape.leaf_path(first(1, 1))}/x1", first(2, 1)),  # in the 300k rename
              (f"{shape.leaf_path(first(2, 2))}/x2", first(1, 2))]  # in the polled g2, to g1
    links = []
    for name, k in pairs:
        os.link(os.path.join(SRC, shape.leaf_path(k), "f0"), os.path.join(SRC, name))
        links.append((name, shape.size(k)))
    return links


# ---- mounts and the daemon -----------------------------------------------------------------

def wait_rusage(argv):
    """Runs argv; returns (seconds, peak RSS of that process in bytes, exit status)."""
    LOG.write(f"$ {' '.join(argv)}\n")
    LOG.flush()
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=LOG, stderr=LOG)
    _, st, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(st)
    return time.perf_counter() - t0, ru.ru_maxrss * 1024, p.returncode


def mount_dtkfs():
    """prlimit'ed `dtkfs mount`; returns (seconds, the mount process's peak RSS, daemon pid)."""
    os.makedirs(MNT, exist_ok=True)
    mounted.append(MNT)
    secs, rss, rc = wait_rusage(PRLIMIT + [DTKFS, "mount", SRC, MNT, "--index", INDEX])
    if rc != 0:
        raise RuntimeError(f"dtkfs mount failed (exit {rc}); see {WORK}/log.txt")
    return secs, rss, int(dtkfs_status(DTKFS, MNT)["pid"])


def umount_dtkfs():
    if MNT in mounted:
        mounted.remove(MNT)
    t0 = time.perf_counter()
    r = subprocess.run([DTKFS, "umount", MNT], stdout=LOG, stderr=LOG)
    secs = time.perf_counter() - t0
    if r.returncode != 0 or os.path.ismount(MNT):
        problem(f"`dtkfs umount` failed (exit {r.returncode})")
        force_unmount(MNT)
    return secs


def unmount_all():
    for m in reversed(mounted):
        try:
            if m == MNT:
                subprocess.run([DTKFS, "umount", m], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=600)
        except subprocess.TimeoutExpired:
            pass
        finally:
            force_unmount(m)
    mounted.clear()


def proc_status(pid):
    """VmRSS, VmHWM in bytes (a dict), or {} when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return {l.split(":")[0]: int(l.split()[1]) * 1024 for l in f if l.startswith(("VmRSS", "VmHWM"))}
    except (FileNotFoundError, ProcessLookupError):
        return {}


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return 0


def nofile_limit(pid):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise RuntimeError(f"no 'Max open files' in /proc/{pid}/limits")


def alive(pid):
    return os.path.exists(f"/proc/{pid}")


class Sampler:
    """Samples a process's VmRSS and open descriptors every SAMPLE_PERIOD s in a thread."""

    def __init__(self, pid):
        self.pid, self.rss, self.fds = pid, [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def sample(self):
        rss = proc_status(self.pid).get("VmRSS")
        if rss is not None:
            self.rss.append(rss)
            self.fds.append(fd_count(self.pid))

    def loop(self):
        while not self.stop.wait(SAMPLE_PERIOD):
            self.sample()

    def __enter__(self):
        self.sample()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.sample()


def xattr_totals(path):
    return tuple(int(os.getxattr(path, f"user.total_{n}")) for n in ("bytes", "files", "dirs"))


def drop_caches():
    run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


VERIFY_DONE = "done "


def wait_verified(timeout=7200):
    """Waits until the verification a mount from an index starts has ended; returns the
    daemon's words for it ("done N directories in S s, K corrected")."""
    start = time.monotonic()
    while True:
        st = dtkfs_status(DTKFS, MNT)
        if st.get("verify", "").startswith(VERIFY_DONE) and int(st.get("verify_runs", "0")) >= 1:
            return st["verify"]
        if st.get("verify") in ("off", None) or (st["verify"] == "never" and time.monotonic() > start + 30):
            problem(f"no verification after a mount from the index: verify: {st.get('verify')}")
            return st.get("verify")
        if time.monotonic() > start + timeout:
            raise RuntimeError(f"verification not done after {timeout} s: {st['verify']}")
        time.sleep(0.5)




def check_totals(rel, links, shape, what):
    want = shape.totals(rel, links)
    got = xattr_totals(os.path.join(MNT, rel))
    if got != want:
        problem(f"{what}: MNT/{rel} says (bytes, files, dirs) {got}, the tree has {want}")
    return got == want


def entries_below(shape, links, rel):
    """What `find SRC/rel | wc -l` prints: rel itself and everything below it."""
    _, files, dirs = shape.totals(rel, links)
    return 1 + files + dirs


DESCRIPTOR_KEYS = ("descriptors", "descriptor_budget", "descriptors_evicted", "descriptors_reopened",
                   "descriptors_stale", "reopen_by")


def descriptor_line(st):
    return ", ".join(f"{k} {st.get(k, '?')}" for k in DESCRIPTOR_KEYS)


def check_alive(pid, what):
    """Remounts (and returns the new pid) when the daemon died during what."""
    if alive(pid):
        return pid
    problem(f"the dtkfs daemon (pid {pid}) died during {what}; remounting")
    force_unmount(MNT)
    if MNT in mounted:
        mounted.remove(MNT)
    pid = mount_dtkfs()[2]
    wait_verified()
    return pid


# ---- 1: scan and mount ---------------------------------------------------------------------

def stage_mount(shape, links):
    res = {"load": [loadavg()]}
    drop_caches()
    secs, rss, pid = mount_dtkfs()
    ps = proc_status(pid)
    st = dtkfs_status(DTKFS, MNT)
    res["first"] = {"seconds": secs, "mount_maxrss": rss, "daemon_hwm": ps.get("VmHWM"),
                    "daemon_rss": ps.get("VmRSS"), "fds": fd_count(pid), "nofile": nofile_limit(pid),
                    "budget": st.get("descriptor_budget"), "reopen_by": st.get("reopen_by")}
    res["first"]["exact"] = check_totals("", links, shape, "after the first mount")
    say(f"mount: first mount (scan) {secs:.1f} s, mount process peak RSS {rss / 2**20:.0f} MiB, "
        f"daemon RSS {ps.get('VmRSS', 0) / 2**20:.0f} MiB, RLIMIT_NOFILE {res['first']['nofile']}, "
        f"descriptor_budget {st.get('descriptor_budget')}")
    if res["first"]["nofile"] != (NOFILE, NOFILE):
        problem(f"the daemon's RLIMIT_NOFILE is {res['first']['nofile']}, not {NOFILE}")
    res["umount_after_scan"] = umount_dtkfs()
    res["index_bytes"] = os.path.getsize(INDEX)
    drop_caches()
    secs, rss, pid = mount_dtkfs()
    ps = proc_status(pid)
    t0 = time.perf_counter()
    verify = wait_verified()
    res["remount"] = {"seconds": secs, "mount_maxrss": rss, "daemon_rss": ps.get("VmRSS"),
                      "verify": verify, "verify_wall": time.perf_counter() - t0,
                      "hwm_after_verify": proc_status(pid).get("VmHWM"),
                      "rss_after_verify": proc_status(pid).get("VmRSS")}
    say(f"mount: remount {secs * 1000:.0f} ms; {verify}")
    res["load"].append(loadavg())
    return res, pid  # the remount stays mounted, verified


# ---- 2 and 3: walks ------------------------------------------------------------------------

def walk(argv):
    """Runs argv (a shell pipeline); returns seconds, stdout (a number), stderr lines, exit."""
    errf = os.path.join(WORK, "walk.err")
    with open(errf, "w") as err:
        t0 = time.perf_counter()
        p = subprocess.run(["bash", "-o", "pipefail", "-c", argv], stdout=subprocess.PIPE, stderr=err, text=True)
        secs = time.perf_counter() - t0
    lines = open(errf, errors="replace").read().splitlines()
    value = p.stdout.split()[0] if p.stdout.split() else "?"
    return {"seconds": secs, "value": int(value) if value.isdigit() else value, "errors": len(lines),
            "first_errors": lines[:5], "exit": p.returncode}


TOOLS = {"find | wc -l": "find {} | wc -l", "du -sb": "du -sb {}"}


def walk_dtkfs(pid, cmd):
    """One walk of the dtkfs mount with the daemon sampled; cache dropped before."""
    drop_caches()
    before = proc_status(pid).get("VmRSS", 0)
    with Sampler(pid) as s:
        w = walk(cmd)
    st = dtkfs_status(DTKFS, MNT) if alive(pid) else {}
    w.update({"rss_before": before, "rss_after": proc_status(pid).get("VmRSS"),
              "rss_max": max(s.rss, default=0), "fds_max": max(s.fds, default=0), "samples": len(s.rss),
              "status": {k: st.get(k) for k in DESCRIPTOR_KEYS + ("totals", "overlay", "rename_levels")}})
    return w


def say_walk(what, t, w):
    say(f"{what} {t}: {w['seconds']:.1f} s, {w['value']}, {w['errors']} error lines, exit {w['exit']}"
        + (f" ({w['first_errors'][0]})" if w["errors"] else "")
        + (f"; daemon VmRSS {w['rss_before'] / 2**20:.0f} -> {(w['rss_after'] or 0) / 2**20:.0f} MiB (max "
           f"{w['rss_max'] / 2**20:.0f}), max fds {w['fds_max']}; {descriptor_line(w['status'])}"
           if t == "dtkfs" else ""))


def check_walks(by_tool, entries, what):
    for t in by_tool["find | wc -l"]:
        for w in by_tool["find | wc -l"][t]:
            if w["value"] != entries or w["errors"] or w["exit"]:
                problem(f"{what}: `find | wc -l` on {t}: {w['value']} entries of {entries:,}, {w['errors']} error "
                        f"lines, exit {w['exit']}" + (f": {w['first_errors'][0]}" if w["errors"] else ""))
        for w in by_tool["du -sb"][t]:
            if w["errors"] or w["exit"]:
                problem(f"{what}: `du -sb` on {t}: {w['errors']} error lines, exit {w['exit']}"
                        + (f": {w['first_errors'][0]}" if w["errors"] else ""))


def stage_peers(pid, shape, links, part):
    """find and du -sb of SRC/part, MERGER/part, MNT/part, ROUNDS rounds, targets rotated."""
    load = [loadavg()]
    targets = {"native": SRC, "mergerfs": MERGER, "dtkfs": MNT}
    os.makedirs(MERGER, exist_ok=True)
    mounted.append(MERGER)
    run(["mergerfs", "-o", "cache.files=off", SRC, MERGER])
    res = {tool: {t: [] for t in targets} for tool in TOOLS}
    for r in range(ROUNDS):
        order = list(targets)[r % 3:] + list(targets)[:r % 3]
        for tool, cmd in TOOLS.items():
            for t in order:
                path = os.path.join(targets[t], part)
                if t == "dtkfs":
                    w = walk_dtkfs(pid, cmd.format(path))
                    pid = check_alive(pid, f"`{tool}` of MNT/{part}")
                else:
                    drop_caches()
                    w = walk(cmd.format(path))
                res[tool][t].append(w)
                say_walk(f"peers: round {r + 1}/{ROUNDS} {tool}", t, w)
    entries = entries_below(shape, links, part)
    check_walks(res, entries, f"{part}")
    umount_merger()
    load.append(loadavg())
    return {"walks": res, "entries": entries, "part": part, "load": load}, pid


def stage_full_walk(pid, shape, links):
    """find and du -sb of the whole tree, native then dtkfs, once each."""
    load = [loadavg()]
    res = {tool: {"native": [], "dtkfs": []} for tool in TOOLS}
    for tool, cmd in TOOLS.items():
        drop_caches()
        w = walk(cmd.format(SRC))
        res[tool]["native"].append(w)
        say_walk(f"full walk: {tool}", "native", w)
        w = walk_dtkfs(pid, cmd.format(MNT))
        res[tool]["dtkfs"].append(w)
        say_walk(f"full walk: {tool}", "dtkfs", w)
        if w["errors"] or w["exit"]:
            problem(f"the full walk `{tool}` of MNT: {w['errors']} error lines, exit {w['exit']}; first: "
                    + " | ".join(w["first_errors"]) + f"; status after: {descriptor_line(w['status'])}")
        pid = check_alive(pid, f"`{tool}` of MNT")
    entries = entries_below(shape, links, "")
    check_walks(res, entries, "the whole tree")
    load.append(loadavg())
    return {"walks": res, "entries": entries, "load": load}, pid


def umount_merger():
    if MERGER in mounted:
        mounted.remove(MERGER)
        force_unmount(MERGER)

# ---- 3: renames under load -----------------------------------------------------------------

# The other process: getxattr back to back until SIGTERM; writes start times and latencies.
GETXATTR_LOOP = r"""
import array, os, signal, sys, time
path, outp = sys.argv[1], sys.argv[2]
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
starts, lats, values, errors = array.array("d"), array.array("d"), {}, 0
print("ready", flush=True)
while not stop:
    t0 = time.perf_counter()
    try:
        v = os.getxattr(path, "user.total_bytes")
    except OSError as e:
        v, errors = repr(e).encode(), errors + 1
    starts.append(t0)
    lats.append(time.perf_counter() - t0)
    values[v] = values.get(v, 0) + 1
with open(outp, "wb") as f:
    starts.tofile(f)
    lats.tofile(f)
with open(outp + ".json", "w") as f:
    import json
    json.dump({"values": {k.decode(): n for k, n in values.items()}, "errors": errors}, f)
"""


def timed_rename(a, b, poll):
    """`mv MNT/a MNT/b` while getxattr loops on MNT/poll; returns the rename's seconds and the
    latencies of the getxattr calls that overlapped it and of those before it."""
    outp = os.path.join(WORK, "getxattr.bin")
    loop = subprocess.Popen([sys.executable, "-c", GETXATTR_LOOP, os.path.join(MNT, poll), outp],
                            stdout=subprocess.PIPE, text=True)
    loop.stdout.readline()
    time.sleep(0.5)
    t0 = time.perf_counter()
    r = subprocess.run(["mv", os.path.join(MNT, a), os.path.join(MNT, b)], stderr=subprocess.PIPE, text=True)
    t1 = time.perf_counter()
    time.sleep(0.2)
    loop.send_signal(signal.SIGTERM)
    loop.wait()
    if r.returncode:
        problem(f"mv {a} {b} failed: {r.stderr.strip()}")
    n = os.path.getsize(outp) // 16
    starts, lats = array.array("d"), array.array("d")
    with open(outp, "rb") as f:
        starts.fromfile(f, n)
        lats.fromfile(f, n)
    meta = json.load(open(outp + ".json"))
    during = [l for s, l in zip(starts, lats) if s < t1 and s + l > t0]
    before = [l for s, l in zip(starts, lats) if s + l <= t0]
    return {"seconds": t1 - t0, "during": during, "before": before, "values": meta["values"],
            "errors": meta["errors"]}


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))] if s else float("nan")


def stage_rename(shape, links):
    """Each subtree moved to another parent and back once (four renames: fewer than the 8
    rename maps that start a compaction, so `dtkfs compact` after them folds all four)."""
    load = [loadavg()]
    poll = "g2"
    moves = [("30k", "g0/d0", "g1/d0-moved"), ("300k", "g1", "g0/g1-moved")]
    want_poll = shape.totals(poll, links)
    res = {}
    for label, a, b in moves:
        subtree = shape.totals(a, links)
        rows = []
        for src, dst in ((a, b), (b, a)):
            root_before = xattr_totals(MNT)
            st0 = dtkfs_status(DTKFS, MNT)
            x = timed_rename(src, dst, poll)
            root_after, moved = xattr_totals(MNT), xattr_totals(os.path.join(MNT, dst))
            st1 = dtkfs_status(DTKFS, MNT)
            x.update({"from": src, "to": dst, "root_same": root_after == root_before,
                      "subtree_same": moved == subtree,
                      "compactions": int(st1["compactions"]) - int(st0["compactions"]),
                      "overlay_after": st1["overlay"], "rename_levels": st1.get("rename_levels")})
            want_value = str(want_poll[0])
            x["poll_wrong"] = sum(n for v, n in x["values"].items() if v != want_value)
            if not x["root_same"]:
                problem(f"rename {src} -> {dst}: the root's totals went from {root_before} to {root_after}")
            if not x["subtree_same"]:
                problem(f"rename {src} -> {dst}: the moved subtree says {moved}, the tree has {subtree}")
            if x["poll_wrong"] or x["errors"]:
                problem(f"rename {src} -> {dst}: {x['poll_wrong']} getxattr of MNT/{poll} differed from "
                        f"{want_value} ({x['errors']} errors): {x['values']}")
            x["during_n"], x["before_n"] = len(x["during"]), len(x["before"])
            x["during_max"], x["during_p99"] = max(x["during"], default=float("nan")), pct(x["during"], 99)
            x["before_p99"], x["before_max"] = pct(x["before"], 99), max(x["before"], default=float("nan"))
            say(f"rename {label}: {src} -> {dst} {x['seconds'] * 1000:.0f} ms; getxattr during it: "
                f"{x['during_n']} calls, worst {x['during_max'] * 1000:.1f} ms, p99 {x['during_p99'] * 1000:.2f} ms; "
                f"rename_levels {x['rename_levels']}, compactions during {x['compactions']}")
            del x["during"], x["before"]
            rows.append(x)
        res[label] = {"dirs": subtree[2] + 1, "files": subtree[1], "from": a, "to": b, "rows": rows}
    check_totals("", links, shape, "after the renames")
    load.append(loadavg())
    return {"moves": res, "load": load}


# ---- 5: compaction -------------------------------------------------------------------------

def timed_compact(pid, what):
    st0 = dtkfs_status(DTKFS, MNT)
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5\n")  # resets VmHWM to the current RSS
    before = proc_status(pid)
    with Sampler(pid) as s:
        t0 = time.perf_counter()
        r = subprocess.run([DTKFS, "compact", MNT], stdout=LOG, stderr=LOG)
        secs = time.perf_counter() - t0
    after = proc_status(pid)
    st1 = dtkfs_status(DTKFS, MNT)
    row = {"what": what, "seconds": secs, "exit": r.returncode, "overlay_before": st0["overlay"],
           "rename_levels_before": st0.get("rename_levels"), "overlay_after": st1["overlay"],
           "rename_levels_after": st1.get("rename_levels"), "rss_before": before.get("VmRSS"),
           "hwm": after.get("VmHWM"), "rss_after": after.get("VmRSS"), "rss_max_sampled": max(s.rss, default=0),
           "generation": st1["generation"], "last_result": st1["last_result"],
           "index_bytes": os.path.getsize(INDEX)}
    if r.returncode:
        problem(f"`dtkfs compact` ({what}) exited {r.returncode}: {st1['last_result']}")
    say(f"compact ({what}): {secs:.2f} s, overlay {st0['overlay']} -> {st1['overlay']}, rename_levels "
        f"{st0.get('rename_levels')} -> {st1.get('rename_levels')}, VmRSS {before.get('VmRSS', 0) / 2**20:.0f} MiB, "
        f"VmHWM {after.get('VmHWM', 0) / 2**20:.0f} MiB")
    return row


def stage_compact(pid, shape, links):
    load = [loadavg()]
    rows = [timed_compact(pid, "after the renames")]
    target = os.path.join(MNT, shape.leaf_path(2 * shape.per_g + 3), "f0")
    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"0123456789")
    os.close(fd)
    rows.append(timed_compact(pid, "after one append"))
    want = shape.totals("", links)
    got = xattr_totals(MNT)
    if got != (want[0] + 10, want[1], want[2]):
        problem(f"after the append and the compactions the root says {got}, expected "
                f"({want[0] + 10}, {want[1]}, {want[2]})")
    load.append(loadavg())
    return {"rows": rows, "load": load}



# ---- the section ---------------------------------------------------------------------------

def mib(b):
    if b is None:
        return "?"
    return f"{b / 2**20:,.0f} MiB" if abs(b) >= 10 * 2**20 else f"{b / 2**20:,.1f} MiB"


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def md(text):  # for a table cell
    return str(text).replace("|", "\\|")


def secs(x):
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def ms(x):
    return f"{x * 1000:.2f} ms"


def load_line(load):
    return f"Load average when this part started: {load[0]}; when it ended: {load[-1]}."


def value_str(v):
    return f"{v:,}" if isinstance(v, int) else md(v)


def section(res, info):
    shape, mres = info["shape"], res["mount"]
    f, rm = mres["first"], mres["remount"]
    s = ["<!-- bigtree-bench:begin (generated by bench/bigtree_bench.sh; edits here are overwritten) -->",
         f"## Big trees: {info['files']:,} files, {info['dirs']:,} directories, a daemon with 1,024 descriptors", ""]
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20
    s += [f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {info['commit']}, "
          f"{info['minutes']:.0f} minutes. {os.cpu_count()} cores ({cpu_model}), {mem:.0f} GiB RAM, Linux "
          f"{platform.release()}; {info['mergerfs']}; load average at the start {info['load_start']}, at the end "
          f"{info['load_end']}. How to run: `sudo ./bench/bigtree_bench.sh` (DTKFS_BIGTREE_FILES, DTKFS_BENCH_ROUNDS, "
          "DTKFS_BENCH_REF, DTKFS_BENCH_BINARY: see its header).", "",
          f"Tree: {info['files']:,} empty files, 10 per directory, in {info['dirs']:,} directories "
          f"(`gG/dD/mMMM/lLL/`, {shape['M']} m per d, 100 l per m, g0 to g{shape['groups'] - 1}), "
          f"{len(info['links'])} of them with a second name; "
          f"the first file of each leaf directory is sparse with 1 to 1,000 bytes ({info['bytes']:,} bytes in all). "
          f"{info['entries']:,} entries with the root. Made once, in {info['made_seconds']:.0f} s, by two Python "
          "processes (mkdir, mknod) on one fresh journaled ext4 in a loop file, with inodes enough "
          "(`mkfs.ext4 -N`). The dtkfs daemon runs under `prlimit --nofile=1024:1024` (its /proc/PID/limits: "
          f"{f['nofile'][0]:,} soft, {f['nofile'][1]:,} hard) with the default options: fanotify watch, "
          f"verification after a mount from the index, `descriptor_budget: {f['budget']}` "
          f"(`reopen_by: {f['reopen_by']}`).", ""]
    if problems:
        s += ["**Problems seen in this run:**", ""] + [f"- {md(p)}" for p in problems[:30]]
        if len(problems) > 30:
            s.append(f"- ... and {len(problems) - 30} more (in the raw results)")
        s.append("")

    s += ["### Scan and mount", "", load_line(mres["load"]),
          "Seconds until `dtkfs mount` returns, `sync; echo 3 > /proc/sys/vm/drop_caches` before each; peak RSS of "
          "the command's own process (wait4's `ru_maxrss`: the scan runs in it, before it daemonises), and the "
          "daemon's VmRSS right after the mount. One mount of each kind.", "",
          "| step | seconds | peak RSS of the command | daemon VmRSS after |",
          "|---|---:|---:|---:|",
          f"| first mount (no index: scans {info['entries']:,} entries) | {secs(f['seconds'])} | "
          f"{mib(f['mount_maxrss'])} | {mib(f['daemon_rss'])} |",
          f"| remount from the index | {secs(rm['seconds'])} | {mib(rm['mount_maxrss'])} | {mib(rm['daemon_rss'])} |",
          "", f"The index file: {mib(mres['index_bytes'])}. `dtkfs umount` after the first mount (final compaction): "
          f"{secs(mres['umount_after_scan'])}. The background verification the remount starts (waited for before "
          f"the walks): {rm['verify']} (the daemon's words; {rm['verify_wall']:.1f} s from the mount's return); "
          f"the daemon's VmHWM after it {mib(rm['hwm_after_verify'])}, VmRSS {mib(rm['rss_after_verify'])}.", ""]

    p = res["peers"]
    walks = p["walks"]
    s += [f"### Walks of g{shape['groups'] - 1} (a tenth of the tree): native, mergerfs, dtkfs", "", load_line(p["load"]),
          f"`find DIR | wc -l` and `du -sb DIR` of `{p['part']}` ({p['entries']:,} entries), mergerfs "
          "(`-o cache.files=off`) and dtkfs each mounted on the whole tree and walked in that part through the "
          f"mount; `sync; echo 3 > /proc/sys/vm/drop_caches` before each walk; {plural(ROUNDS, 'round')}, the "
          "targets in rotated order in each. Median seconds (best in parentheses); ratios of the medians. "
          "Errors: lines on the walk's stderr (the walk is not stopped by them).", "",
          "| walk | native | mergerfs | dtkfs | mergerfs / native | dtkfs / native | dtkfs / mergerfs | result (native; mergerfs; dtkfs) | error lines (mergerfs; dtkfs) |",
          "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for tool, by in walks.items():
        med = {t: statistics.median(w["seconds"] for w in v) for t, v in by.items()}
        best = {t: min(w["seconds"] for w in v) for t, v in by.items()}
        broken = {t: any(w["errors"] or w["exit"] for w in v) for t, v in by.items()}
        cell = lambda t: f"{secs(med[t])} ({secs(best[t])})" + (" incomplete" if broken[t] else "")  # noqa: E731
        ratio = lambda a, b: "– (incomplete)" if broken[a] or broken[b] else f"{med[a] / med[b]:.2f}x"  # noqa: E731
        vals = "; ".join(",".join(value_str(w["value"]) for w in by[t]) for t in by)
        errs = "; ".join(",".join(f"{w['errors']:,}" for w in by[t]) for t in ("mergerfs", "dtkfs"))
        s.append(f"| `{md(tool)}` | " + " | ".join(cell(t) for t in by) +
                 f" | {ratio('mergerfs', 'native')} | {ratio('dtkfs', 'native')} | {ratio('dtkfs', 'mergerfs')} | "
                 f"{vals} | {errs} |")
    dk = [w for by in walks.values() for w in by["dtkfs"]]
    incomplete = any(w["errors"] or w["exit"] for by in walks.values() for v in by.values() for w in v)
    s += ["", ("Incomplete: the walk printed errors or exited non-zero in at least one round; no ratio is given "
               "then. " if incomplete else "") +
          f"The dtkfs daemon during these walks: VmRSS at most {mib(max(w['rss_max'] for w in dk))}, at most "
          f"{max(w['fds_max'] for w in dk):,} open descriptors (/proc/PID/fd, sampled every {SAMPLE_PERIOD} s).", ""]

    fw = res["full"]
    walks, n = fw["walks"], fw["entries"]
    s += ["### The whole tree through dtkfs", "", load_line(fw["load"]),
          f"`find MNT | wc -l` and `du -sb MNT` of all {n:,} entries, once each, native first, "
          "`sync; echo 3 > /proc/sys/vm/drop_caches` before each walk. The daemon's VmRSS right before and right "
          "after the walk (the kernel still knows the walked inodes then), its maximum and the maximum of its open "
          f"descriptors (/proc/PID/fd) sampled every {SAMPLE_PERIOD} s; per entry: over the {n:,} entries of the "
          "tree (what `find` prints).", "",
          "| walk | native | dtkfs | dtkfs / native | result (native; dtkfs) | error lines, exit | VmRSS before | after | max | (after − before) per entry | max open fds |",
          "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    for tool, by in walks.items():
        nat, w = by["native"][0], by["dtkfs"][0]
        bad = w["errors"] or w["exit"] or nat["errors"] or nat["exit"]
        per = (f"{(w['rss_after'] - w['rss_before']) / n:,.0f} B" if w["rss_after"] is not None else "–")
        ratio = "– (incomplete)" if bad else f"{w['seconds'] / nat['seconds']:.2f}x"
        s.append(f"| `{md(tool)}` | {secs(nat['seconds'])} | {secs(w['seconds'])} | "
                 f"{ratio} | "
                 f"{value_str(nat['value'])}; {value_str(w['value'])} | {w['errors']:,}, {w['exit']} | "
                 f"{mib(w['rss_before'])} | {mib(w['rss_after'])} | {mib(w['rss_max'])} | {per} | {w['fds_max']:,} |")
    s += ["", "`dtkfs status` after each dtkfs walk:", ""]
    for tool, by in walks.items():
        st = by["dtkfs"][0]["status"]
        s.append(f"- `{md(tool)}`: " + ", ".join(f"`{k}: {md(st.get(k))}`" for k in DESCRIPTOR_KEYS + ("totals",)))
    first_errors = [e for by in walks.values() for w in by["dtkfs"] for e in w["first_errors"]]
    if first_errors:
        s += ["", "First error lines: " + "; ".join(f"`{md(e)}`" for e in first_errors[:5]) + "."]
    s.append("")

    ren = res["rename"]
    s += ["### Renames under size queries", "", load_line(ren["load"]),
          "`mv MNT/A MNT/B` (one rename(2) to another parent), then back, once each, cache dropped before the "
          "first, while another process calls getxattr(`user.total_bytes`) of `MNT/g2` (outside both) back to "
          "back. mv: wall time of `mv` (process start included). Latencies of the getxattr calls that overlapped "
          "the `mv`, and for reference p99 of those in the 0.5 s before it. Checked right after each: the root's "
          "totals unchanged, the moved subtree's totals equal to the tree's, every getxattr value equal to g2's; "
          "`rename_levels` from `dtkfs status` then (rename maps not yet folded into the index; 8 start a "
          "compaction).", "",
          "| rename | directories | files | mv | getxattr during it: calls | worst | p99 | p99 before | totals right | rename_levels after | compactions during |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for label, t in ren["moves"].items():
        for x in t["rows"]:
            right = x["root_same"] and x["subtree_same"] and not x["poll_wrong"] and not x["errors"]
            s.append(f"| `{x['from']}` → `{x['to']}` | {t['dirs']:,} | {t['files']:,} | {secs(x['seconds'])} | "
                     f"{x['during_n']:,} | {ms(x['during_max'])} | {ms(x['during_p99'])} | {ms(x['before_p99'])} | "
                     f"{'yes' if right else '**no**'} | {x['rename_levels']} | {x['compactions']} |")
    s.append("")

    c = res["compact"]
    s += ["### Compaction", "", load_line(c["load"]),
          f"`dtkfs compact MNT` at {info['dirs']:,} directories: first on what the renames left, then after one "
          "10-byte append through the mount. Peak RSS: the daemon's VmHWM after the compaction, reset to its "
          "VmRSS just before (`echo 5 > /proc/PID/clear_refs`).", "",
          "| compaction | seconds | overlay before | rename_levels before → after | VmRSS before | peak RSS (VmHWM) | peak − before | index file after |",
          "|---|---:|---:|---|---:|---:|---:|---:|"]
    for x in c["rows"]:
        s.append(f"| {x['what']} | {secs(x['seconds'])} | {x['overlay_before']} | {x['rename_levels_before']} → "
                 f"{x['rename_levels_after']} | {mib(x['rss_before'])} | {mib(x['hwm'])} | "
                 f"{mib(x['hwm'] - x['rss_before']) if x['hwm'] and x['rss_before'] else '?'} | {mib(x['index_bytes'])} |")
    s += ["", "Raw results: `$DTKFS_BENCH_DIR/bigtree-results.json`.", "<!-- bigtree-bench:end -->"]
    return "\n".join(s) + "\n"


# ---- main ----------------------------------------------------------------------------------

def main():
    global LOG
    t_start = time.perf_counter()
    load_start = loadavg()
    shape = Shape(FILES)
    if shape.leaves <= 2 * shape.per_g + 3 * shape.per_d:  # g0, g1 and g2/d2 are used
        raise SystemExit(f"DTKFS_BIGTREE_FILES={FILES} is too small: the renames need 3 groups (use >= 100000)")
    part = f"g{shape.groups - 1}"
    os.makedirs(os.path.join(WORK, "index"), exist_ok=True)
    os.environ["XDG_STATE_HOME"] = os.path.join(WORK, "state")
    LOG = open(os.path.join(WORK, "log.txt"), "a")
    info = {"load_start": load_start, "files": FILES, "shape": {"M": shape.M, "groups": shape.groups}}
    head = out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).strip()
    changed = out(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"]).splitlines()
    info["commit"] = os.environ.get("DTKFS_BENCH_COMMIT") or f"`{head}`" + (
        f" with uncommitted changes to {len(changed)} files" if changed else "")
    info["mergerfs"] = out(["mergerfs", "--version"]).split("\n")[0]

    say(f"making the tree: {FILES:,} files, {shape.leaves:,} leaf directories, {shape.groups} groups")
    t0 = time.perf_counter()
    links = make_tree(shape)
    run(["sync"])
    info["made_seconds"] = time.perf_counter() - t0
    info["bytes"], files_with_links, info["dirs"] = shape.totals("", links)
    info["links"], info["entries"] = links, 1 + files_with_links + info["dirs"]
    info["make_rate"] = info["entries"] / info["made_seconds"]
    say(f"made the tree in {info['made_seconds']:.1f} s ({info['make_rate']:,.0f} entries/s; "
        f"{info['dirs']:,} directories); at this rate {DEFAULT_FILES:,} files take about "
        f"{info['made_seconds'] * DEFAULT_FILES / FILES / 60:.0f} minutes")

    res = {}
    stage_times = {}

    def stage(name, fn, *a):
        t = time.perf_counter()
        r = fn(*a)
        stage_times[name] = time.perf_counter() - t
        say(f"stage {name}: {stage_times[name]:.0f} s")
        return r

    res["mount"], pid = stage("mount", stage_mount, shape, links)
    res["peers"], pid = stage("peers", stage_peers, pid, shape, links, part)
    res["full"], pid = stage("full walk", stage_full_walk, pid, shape, links)
    drop_caches()
    res["rename"] = stage("rename", stage_rename, shape, links)
    res["compact"] = stage("compact", stage_compact, pid, shape, links)
    res["status_end"] = dtkfs_status(DTKFS, MNT)
    umount_dtkfs()
    info["minutes"] = (time.perf_counter() - t_start) / 60
    info["load_end"] = loadavg()
    info["stage_seconds"] = stage_times
    res["problems"] = problems
    with open(os.path.join(os.path.dirname(WORK), "bigtree-results.json"), "w") as f:  # outlives the scratch fs
        json.dump({"results": res, "info": info}, f, indent=1)
    text = section(res, info)
    print(text)
    if WRITE:
        write_section(REPO, "bigtree-bench", text)
        say("wrote the bigtree-bench section of docs/benchmarks.md")
    else:
        say(f"DTKFS_BENCH_WRITE is not 1 ({FILES:,} files): docs/benchmarks.md left as it is")
    say(f"stages (s): {', '.join(f'{k} {v:.0f}' for k, v in stage_times.items())}; made the tree in "
        f"{info['made_seconds']:.0f} s; {info['minutes']:.1f} minutes in all")
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
