"""Helpers the benchmark drivers share (mount_bench.py, watch_bench.py, bigtree_bench.py,
run_bench.py)."""
import os
import subprocess
import time


def run(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def out(argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def timed(argv):
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def write_section(repo, name, section, doc=None):
    """Replaces docs/benchmarks.md's generated section `name` (between its begin and end
    markers) with section, or appends it when the file has none yet. doc: another file to
    write instead."""
    import re
    doc = doc or os.path.join(repo, "docs", "benchmarks.md")
    text = open(doc).read()
    pat = re.compile(r"<!-- " + name + r":begin.*?<!-- " + name + r":end -->\n?", re.S)
    text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
    open(doc, "w").write(text)


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def force_unmount(mnt):
    """Unmounts the FUSE mount at mnt if there is one, lazily when it is busy."""
    if os.path.ismount(mnt):
        if subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL).returncode:
            subprocess.run(["fusermount3", "-u", "-z", mnt])


def dtkfs_status(dtkfs, mnt):
    """`dtkfs status MNT` as a dict of its key: value lines."""
    fields = {}
    for line in out([dtkfs, "status", mnt]).splitlines():
        k, sep, v = line.partition(": ")
        if sep:
            fields[k] = v
    return fields


def tree_bytes(root):
    """The sum of st_size of every non-directory below root: what dtkfs counts (brief section 2)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


def clean_leftovers(work):
    """Unmounts what an interrupted run left under work (FUSE first), then empties work."""
    if os.path.isdir(work):
        mounts = [l.split()[1] for l in open("/proc/self/mounts")]
        for m in sorted((m for m in mounts if m.startswith(work + "/")), key=len, reverse=True):
            if subprocess.run(["fusermount3", "-u", m], stderr=subprocess.DEVNULL).returncode:
                if subprocess.run(["umount", m], stderr=subprocess.DEVNULL).returncode:
                    subprocess.run(["umount", "-l", m])
    run(["rm", "-rf", work])
    os.makedirs(work)
