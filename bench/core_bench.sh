#!/usr/bin/env bash
# core_bench.sh: the "core" benchmark. Measures, side by side on one machine in one run,
#   1. `dtkfs scan TREE --index X` vs `du -sb TREE` vs `gdu -npc TREE` on a Linux 6.1 source
#      tree (page cache warm), plus an in-process breakdown of the scan (walk vs index write
#      vs fsync);
#   2. `dtkfs du --index X TREE` vs `du -sb TREE` (processes), and the in-process lookup the
#      dtkfs process spends its few microseconds on (index_load_bench --existing);
#   3. IndexReader::Open of a generated 1,000,000-directory index, and Lookup latency.
# and writes the results, with the ratios against the goals, into docs/benchmarks.md (the
# section between the core-bench markers; the rest of the file is left alone).
#
# Usage: ./bench/core_bench.sh
# Environment:
#   DTKFS_BENCH_DIR   cache and scratch directory (default /var/tmp/dtkfs-bench); the kernel
#                     tarball is extracted once into $DTKFS_BENCH_DIR/linux-6.1
#   DTKFS_BUILD_DIR   build directory (default build-bench/, Release)
#   DTKFS_KERNEL_TARBALL  (default /usr/src/linux-source-6.1.tar.xz, Debian linux-source-6.1)
#   DTKFS_BENCH_DIRS  directories in the generated index (default 1000000)
#   DTKFS_BENCH_NICE  e.g. -10: run in a session of its own with that nice value, also for the
#                     session's scheduler autogroup (needs root; for shared, busy machines)
#   DTKFS_BENCH_DOC   where to write (default docs/benchmarks.md)
# Needs: cmake, ninja, hyperfine, gdu, du (coreutils), python3.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${DTKFS_BENCH_DIR:-/var/tmp/dtkfs-bench}
BUILD_DIR=${DTKFS_BUILD_DIR:-$REPO/build-bench}
TARBALL=${DTKFS_KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
DIRS=${DTKFS_BENCH_DIRS:-1000000}
DOC=${DTKFS_BENCH_DOC:-$REPO/docs/benchmarks.md}
TREE=$BENCH_DIR/linux-6.1
IDX=$BENCH_DIR/linux-6.1.dtkidx
OUT=$BENCH_DIR/results
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

say() { printf 'core_bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

if [[ -n ${DTKFS_BENCH_NICE:-} ]]; then
  # A session of our own, so the autogroup nice below applies to the benchmark only.
  if [[ $(ps -o sid= -p $$ | tr -d ' ') != "$$" ]]; then exec setsid "$0" "$@"; fi
  echo "$DTKFS_BENCH_NICE" >/proc/self/autogroup 2>/dev/null || say "could not set the autogroup nice"
  renice -n "$DTKFS_BENCH_NICE" -p $$ >/dev/null || say "could not renice"
fi

for tool in hyperfine gdu du cmake tar; do
  command -v "$tool" >/dev/null || die "$tool is missing (./scripts/deps.sh bench installs it)"
done
[[ -n $PY ]] || die "python3 is missing"
# hyperfine -N (no shell: process start is part of what we measure) splits on whitespace.
[[ $BENCH_DIR != *[[:space:]]* && $BUILD_DIR != *[[:space:]]* ]] ||
  die "DTKFS_BENCH_DIR and DTKFS_BUILD_DIR must not contain whitespace"

# --- build -----------------------------------------------------------------------------------
say "building dtkfs and index_load_bench in $BUILD_DIR (Release)"
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD_DIR" --target dtkfs index_load_bench >/dev/null
DTKFS=$BUILD_DIR/dtkfs
LOADBENCH=$BUILD_DIR/bench/index_load_bench

# --- the tree --------------------------------------------------------------------------------
mkdir -p "$BENCH_DIR" "$OUT"
if [[ ! -f $TREE/Makefile ]]; then
  [[ -f $TARBALL ]] || die "$TARBALL missing (apt-get install linux-source-6.1)"
  say "extracting $TARBALL into $TREE (once; takes minutes)"
  rm -rf "$TREE"
  tmp=$(mktemp -d "$BENCH_DIR/extract.XXXXXX")
  tar -xJf "$TARBALL" -C "$tmp"
  top=("$tmp"/*)
  [[ ${#top[@]} -eq 1 && -d ${top[0]} ]] || die "unexpected tarball layout in $tmp"
  mv "${top[0]}" "$TREE"
  rmdir "$tmp"
fi
say "warming the page cache"
for _ in 1 2; do du -sb "$TREE" >/dev/null; done
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. scan ---------------------------------------------------------------------------------
say "scan: dtkfs scan vs du -sb vs gdu"
hyperfine -N --warmup 3 --min-runs 10 --export-json "$OUT/scan.json" \
  -n "dtkfs scan" "$DTKFS scan $TREE --index $IDX" \
  -n "du -sb" "du -sb $TREE" \
  -n "gdu -npc" "gdu -npc $TREE"

say "scan: interleaved pairs (dtkfs scan, du -sb alternating; robust to load that drifts)"
"$PY" - "$OUT/interleaved.json" "$DTKFS scan $TREE --index $IDX" "du -sb $TREE" <<'EOF'
import json, statistics, subprocess, sys, time
out, a, b = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def run(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t
ta, tb = [], []
for i in range(15):
    if i % 2:
        y = run(b); x = run(a)
    else:
        x = run(a); y = run(b)
    ta.append(x); tb.append(y)
ratios = [x / y for x, y in zip(ta, tb)]
json.dump({"a": ta, "b": tb, "ratios": ratios}, open(out, "w"))
print(f"interleaved: {len(ratios)} pairs, median ratio {statistics.median(ratios):.2f}")
EOF

say "scan breakdown (in process: walk, index write, fsync)"
"$LOADBENCH" --scan "$TREE" --index "$BENCH_DIR/scan-breakdown.dtkidx" --runs 10 \
  | tee "$OUT/scan_breakdown.txt"
"$LOADBENCH" --scan "$TREE" --index "$BENCH_DIR/scan-breakdown.dtkidx" --runs 10 --threads 1 \
  | tee "$OUT/scan_breakdown_1thread.txt"
rm -f "$BENCH_DIR/scan-breakdown.dtkidx"

# Sanity: dtkfs counts st_size of non-directories (du -sb adds directory sizes too).
"$DTKFS" scan "$TREE" --index "$IDX" 2>/dev/null
DTKFS_BYTES=$("$DTKFS" du --index "$IDX" "$TREE" | cut -f1)
FIND_BYTES=$(find "$TREE" ! -type d -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
DU_BYTES=$(du -sb "$TREE" | cut -f1)
TREE_ENTRIES=$(find "$TREE" -mindepth 1 -printf x | wc -c)
TREE_DIRS=$(find "$TREE" -type d -printf x | wc -c)

# --- 2. du -----------------------------------------------------------------------------------
say "du: dtkfs du (process) vs du -sb"
hyperfine -N --warmup 3 --min-runs 10 --export-json "$OUT/du.json" \
  -n "dtkfs du" "$DTKFS du --index $IDX $TREE" \
  -n "du -sb" "du -sb $TREE" \
  -n "dtkfs --version" "$DTKFS --version"

say "du: the lookup itself, in process"
"$LOADBENCH" --existing "$IDX" --lookup "" --runs 20 --lookups 200000 | tee "$OUT/du_inprocess.txt"

# --- 3. 1M-directory index -------------------------------------------------------------------
say "index load: $DIRS directories"
TMPDIR=$BENCH_DIR "$LOADBENCH" --dirs "$DIRS" --runs 20 --lookups 1000000 | tee "$OUT/index_load.txt"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ----------------------------------------------------------------------------------
export OUT DOC TREE REPO LOAD_START LOAD_END DTKFS_BYTES FIND_BYTES DU_BYTES TREE_ENTRIES TREE_DIRS
export NICE_SETTING=${DTKFS_BENCH_NICE:-}
"$PY" - <<'EOF'
import datetime, json, os, platform, re, statistics, subprocess

env = os.environ
out = env["OUT"]

def kv(name):
    d = {}
    for line in open(os.path.join(out, name)):
        if line.startswith("#") or not line.strip():
            continue
        k, v = line.split(None, 1)
        d[k] = float(v)
    return d

def hf(name):
    return {r["command"]: r for r in json.load(open(os.path.join(out, name)))["results"]}

def median(r):
    t = sorted(r["times"])
    n = len(t)
    return t[n // 2] if n % 2 else (t[n // 2 - 1] + t[n // 2]) / 2

def fmt_s(sec):
    if sec >= 1: return f"{sec:.3f} s"
    if sec >= 1e-3: return f"{sec * 1e3:.1f} ms"
    if sec >= 1e-6: return f"{sec * 1e6:.1f} µs"
    return f"{sec * 1e9:.0f} ns"

def ratio(x):
    return f"{x:,.2f}x" if x < 100 else f"{x:,.0f}x"

def verdict(ok):
    return "**met**" if ok else "**missed**"

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""

scan, du = hf("scan.json"), hf("du.json")
br, inproc, load = kv("scan_breakdown.txt"), kv("du_inprocess.txt"), kv("index_load.txt")
br1 = kv("scan_breakdown_1thread.txt")

cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
mem = sh("free -g | awk '/Mem:/ {print $2}'")
fs = sh(f"df -T {env['TREE']} | awk 'NR==2 {{print $2}}'")
commit = sh(f"git -C {env['REPO']} rev-parse --short HEAD")
dirty = sh(f"git -C {env['REPO']} status --porcelain")
tools = "; ".join(filter(None, [
    sh("hyperfine --version"), "du " + sh("du --version | head -1 | awk '{print $NF}'"),
    "gdu " + sh("gdu --version | awk '/Version/ {print $2}'")]))

def table(results, base, speedup=False):
    b = median(results[base])
    head = "`du -sb` / this (speedup)" if speedup else "this / `du -sb`"
    rows = [f"| command | median | mean ± σ | min | user | sys | runs | {head} |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        m = median(r)
        rows.append(f"| `{name}` | {fmt_s(m)} | {fmt_s(r['mean'])} ± {fmt_s(r['stddev'] or 0)} | "
                    f"{fmt_s(r['min'])} | {fmt_s(r['user'])} | {fmt_s(r['system'])} | "
                    f"{len(r['times'])} | {ratio(b / m if speedup else m / b)} |")
    return "\n".join(rows)

du_sb_scan = median(scan["du -sb"])
scan_ratio = median(scan["dtkfs scan"]) / du_sb_scan
scan_ratio_best = scan["dtkfs scan"]["min"] / scan["du -sb"]["min"]
pairs = json.load(open(os.path.join(out, "interleaved.json")))
gdu_ratio = median(scan["gdu -npc"]) / du_sb_scan
fsync_ms = br["scan_fsync_median_ms"] + br["scan_dirsync_median_ms"]
du_sb = median(du["du -sb"])
du_sb_best = du["du -sb"]["min"]
du_proc = median(du["dtkfs du"])
floor = median(du["dtkfs --version"])
lookup_s = inproc["key0_lookup_median_ns"] * 1e-9
open_lookup_s = inproc["key0_open_lookup_median_us"] * 1e-6
lookup_speedup = du_sb / lookup_s
open_ms = load["open_median_ms"]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

s = []
s.append("<!-- core-bench:begin (generated by bench/core_bench.sh; edits here are overwritten) -->")
s.append("## Core: scan, du, index load\n")
s.append(f"Run {now}, commit `{commit}`{' with uncommitted changes' if dirty else ''}. "
         f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, Linux {platform.release()}, "
         f"{fs} on the tree's disk. {tools}. Load average at start {env['LOAD_START']}, at end "
         f"{env['LOAD_END']}"
         + (f"; run with DTKFS_BENCH_NICE={env['NICE_SETTING']}." if env['NICE_SETTING'] else "."))
s.append("")
s.append(f"Tree: Linux 6.1 sources (`{env['TREE']}`), {int(env['TREE_ENTRIES']):,} entries, "
         f"{int(env['TREE_DIRS']):,} directories; page cache warm. `dtkfs du` reports "
         f"{int(env['DTKFS_BYTES']):,} bytes, the sum of st_size of every non-directory "
         f"(find: {int(env['FIND_BYTES']):,}: "
         f"{'equal' if env['DTKFS_BYTES'] == env['FIND_BYTES'] else 'DIFFERENT'}); `du -sb` "
         f"reports {int(env['DU_BYTES']):,} because it adds the directories' own sizes.\n")
s.append("Each figure twice: from the medians, and from the best runs (minimum times), the "
         "estimate least disturbed by other load on a shared machine.\n")
s.append("| goal | target | from medians | | from best runs | |")
s.append("|---|---:|---:|---|---:|---|")
def goal(label, target, med, best, ok, show):
    s.append(f"| {label} | {target} | {show(med)} | {verdict(ok(med))} | {show(best)} | "
             f"{verdict(ok(best))} |")
goal("`dtkfs scan` / `du -sb` (whole tree, incl. index write + fsync)", "≤ 0.6x",
     scan_ratio, scan_ratio_best, lambda x: x <= 0.6, ratio)
goal(f"the same, {len(pairs['ratios'])} interleaved pairs (median of per-pair ratios; "
     "min / min)", "≤ 0.6x", statistics.median(pairs["ratios"]), min(pairs["a"]) / min(pairs["b"]),
     lambda x: x <= 0.6, ratio)
goal("lookup speedup over `du -sb`: in-process `Lookup` of the tree's root", "≥ 1000x",
     du_sb / lookup_s, du_sb_best / (inproc["key0_lookup_min_ns"] * 1e-9),
     lambda x: x >= 1000, ratio)
goal("the same, in-process `Open` + `Lookup` (a fresh answer, index not yet mapped)",
     "≥ 1000x", du_sb / open_lookup_s, du_sb_best / (inproc["key0_open_lookup_min_us"] * 1e-6),
     lambda x: x >= 1000, ratio)
goal("the same, `dtkfs du` process (mostly process start)", "≥ 1000x", du_sb / du_proc,
     du_sb_best / du["dtkfs du"]["min"], lambda x: x >= 1000, ratio)
goal(f"open of a {int(load['index_dirs']):,}-directory index", "< 50 ms", open_ms,
     load["open_min_ms"], lambda x: x < 50, lambda x: f"{x:.1f} ms")
s.append("")
s.append("### Scan of the whole tree\n")
s.append("hyperfine, warmup 3, at least 10 runs, no shell (`-N`); ratios use the medians.\n")
s.append(table(scan, "du -sb"))
s.append("")
s.append(f"`dtkfs scan` takes {ratio(scan_ratio)} the time of `du -sb`; `gdu -npc` "
         f"{ratio(gdu_ratio)}. `dtkfs scan` walks with 2 threads, sorts the directories and "
         f"writes the index through tmp file + fsync + rename + directory fsync.\n")
s.append(f"In-process breakdown (`index_load_bench --scan`, {int(br['scan_runs'])} runs, "
         f"ScanTree then WriteIndex through an Env that times the fsyncs):\n")
s.append("| part | median | best |")
s.append("|---|---:|---:|")
for key, label in [("scan_total", "whole scan, 2 walker threads"),
                   ("scan_walk", "↳ walk + sort (`ScanTree`)"),
                   ("scan_write", "↳ index write (`WriteIndex`: tmp file, write, fsync, rename, "
                                  "directory fsync)"),
                   ("scan_fsync", "↳↳ of which fsync of the index file"),
                   ("scan_dirsync", "↳↳ of which fsync of its directory")]:
    s.append(f"| {label} | {br[key + '_median_ms']:.1f} ms | {br[key + '_min_ms']:.1f} ms |")
s.append(f"| walk + sort with 1 walker thread | {br1['scan_walk_median_ms']:.1f} ms | "
         f"{br1['scan_walk_min_ms']:.1f} ms |")
s.append("")
best_fsync = br["scan_fsync_min_ms"] + br["scan_dirsync_min_ms"]
s.append(f"The two fsyncs are {100 * fsync_ms / br['scan_total_median_ms']:.0f}% of the median "
         f"scan and {100 * best_fsync / br['scan_total_min_ms']:.0f}% of the best one (sum of "
         f"the best fsyncs over the best total).\n")
s.append("### du of the whole tree\n")
s.append(table(du, "du -sb", speedup=True))
s.append("")
s.append(f"The `dtkfs du` process ({fmt_s(du_proc)}) is {ratio(du_sb / du_proc)} faster than "
         f"`du -sb` ({fmt_s(du_sb)}), but its time is process start: `dtkfs --version` alone "
         f"takes {fmt_s(floor)}. The answer itself, in process (`index_load_bench --existing "
         f"INDEX --lookup ''`):\n")
s.append("| in process | median | speedup over `du -sb` |")
s.append("|---|---:|---:|")
s.append(f"| `Lookup(\"\")` (root of the tree; hot) | {fmt_s(lookup_s)} | "
         f"{ratio(lookup_speedup)} |")
s.append(f"| `IndexReader::Open` + `Lookup` + unmap ({int(inproc['index_dirs']):,} directories) | "
         f"{fmt_s(open_lookup_s)} | {ratio(du_sb / open_lookup_s)} |")
s.append(f"| random `Lookup` of existing directories in the kernel index | "
         f"{fmt_s(inproc['lookup_median_ns'] * 1e-9)} | "
         f"{ratio(du_sb / (inproc['lookup_median_ns'] * 1e-9))} |")
s.append(f"| `dtkfs du` process (above) | {fmt_s(du_proc)} | {ratio(du_sb / du_proc)} |")
s.append("")
s.append(f"### Open of a {int(load['index_dirs']):,}-directory index\n")
s.append(f"Generated by `index_load_bench --dirs {int(load['generated_dirs'])}`: paths "
         f"{load['avg_depth']:.1f} levels deep on average, {load['avg_path_bytes']:.1f} bytes "
         f"on average, index file {load['index_file_bytes'] / 2**20:.1f} MiB. Open = open + "
         f"fstat + mmap(MAP_POPULATE) + validation (bounds, strict sort order, path syntax, "
         f"CRC32C of every section); each run maps afresh, page cache warm; "
         f"{int(load['open_runs'])} runs.\n")
s.append("| | median | min | p90 |")
s.append("|---|---:|---:|---:|")
for key, label in [("open", "Open (wall)"), ("open_cpu", "Open (thread CPU time)"),
                   ("map", "↳ of which map (open, fstat, mmap+populate)"),
                   ("validate", "↳ of which validate")]:
    s.append(f"| {label} | {load[key + '_median_ms']:.1f} ms | {load[key + '_min_ms']:.1f} ms | "
             f"{load[key + '_p90_ms']:.1f} ms |")
for key, label in [("part_crc", "↳↳ validate's parts, timed alone: CRC32C of the file"),
                   ("part_sort", "↳↳ sort check (`path_at(i-1) < path_at(i)`)"),
                   ("part_syntax", "↳↳ path syntax (`path::IsValidRelative`)")]:
    s.append(f"| {label} | {load[key + '_median_ms']:.1f} ms | {load[key + '_min_ms']:.1f} ms | "
             f"{load[key + '_p90_ms']:.1f} ms |")
s.append(f"| random `Lookup` (batches of 1000) | {load['lookup_median_ns']:.0f} ns | "
         f"{load['lookup_min_ns']:.0f} ns | {load['lookup_p90_ns']:.0f} ns |")
s.append("")
s.append("Raw results: `$DTKFS_BENCH_DIR/results/` (hyperfine JSON, index_load_bench output).")
s.append("<!-- core-bench:end -->")
section = "\n".join(s) + "\n"

doc = env["DOC"]
if os.path.exists(doc):
    text = open(doc).read()
else:
    text = ("# dtkfs benchmarks\n\n"
            "Figures measured on the development machine: a VM with 2 cores, shared, so expect "
            "noise; every section says when it was run and what the load was. Each section is "
            "written by the script that measured it, not by hand.\n\n"
            "How to reproduce: `./bench/core_bench.sh` (needs hyperfine, gdu and the Debian "
            "package linux-source-6.1; `./scripts/deps.sh bench` installs them). It "
            "builds `build-bench/` (Release), extracts the kernel tree once into "
            "`$DTKFS_BENCH_DIR` (default `/var/tmp/dtkfs-bench`) and rewrites the section "
            "below.\n\n")
pat = re.compile(r"<!-- core-bench:begin.*?<!-- core-bench:end -->\n?", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
os.makedirs(os.path.dirname(doc), exist_ok=True)
open(doc, "w").write(text)
print(section)
EOF
say "wrote $DOC"
