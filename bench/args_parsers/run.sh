#!/bin/bash
# Measures the three command-line parsers for dtkfs: own (src/cli/args.{h,cc}), CLI11 and
# Boost.Program_options. For each: compile CPU/wall seconds of the parser translation unit(s)
# with the project's flags, link seconds, stripped binary size, preprocessed lines, and the
# non-blank lines the project would own. Runs are interleaved (own, cli11, po, own, ...).
#   ./run.sh [ROUNDS]      (default 5; needs g++, libfmt-dev, libcli11-dev,
#                           libboost-program-options-dev; DTKFS_SRC defaults to the repository's src/)
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${1:-5}
SRC=${DTKFS_SRC:-$(cd ../../src && pwd)}
CXX=${CXX:-g++}
FLAGS=(-std=c++20 -O2 -g1 -Wall -Wextra)
OUT=out; mkdir -p "$OUT"; rm -f "$OUT"/*.o "$OUT"/times.csv

echo "start: $(date -u +%FT%TZ) $(uptime)" | tee "$OUT/load.txt"
"$CXX" --version | head -1 | tee -a "$OUT/load.txt"

# t LABEL CMD...: appends "LABEL,user,sys,wall" to times.csv
t() { local label=$1; shift
  /usr/bin/time -f "%U %S %e" -o "$OUT/t.txt" "$@"
  read -r u s e < "$OUT/t.txt"; echo "$label,$u,$s,$e" >> "$OUT/times.csv"; }

compile() {  # compile NAME: the parser translation unit(s) of NAME
  case $1 in
    own)   t own:args.cc  "$CXX" "${FLAGS[@]}" -I"$SRC" -c "$SRC/cli/args.cc" -o "$OUT/args.o"
           t own:own.cc   "$CXX" "${FLAGS[@]}" -I"$SRC" -I. -c own.cc -o "$OUT/own.o" ;;
    cli11) t cli11:cli11.cc "$CXX" "${FLAGS[@]}" -I. -c cli11.cc -o "$OUT/cli11.o" ;;
    po)    t po:po.cc     "$CXX" "${FLAGS[@]}" -I. -c po.cc -o "$OUT/po.o" ;;
  esac
}
link() {
  case $1 in
    own)   t own:link   "$CXX" "$OUT/own.o" "$OUT/args.o" "$OUT/ranges.o" "$OUT/status.o" -lfmt \
             -o "$OUT/own" ;;
    cli11) t cli11:link "$CXX" "$OUT/cli11.o" -o "$OUT/cli11" ;;
    po)    t po:link    "$CXX" "$OUT/po.o" -lboost_program_options -o "$OUT/po" ;;
  esac
}

# The range table and Status the own parser uses (shared with the rest of dtkfs): built once,
# not timed.
"$CXX" "${FLAGS[@]}" -I"$SRC" -c "$SRC/util/option_ranges.cc" -o "$OUT/ranges.o"
"$CXX" "${FLAGS[@]}" -I"$SRC" -c "$SRC/util/status.cc" -o "$OUT/status.o"

for ((r = 1; r <= ROUNDS; r++)); do
  for p in own cli11 po; do compile $p; done
  for p in own cli11 po; do link $p; done
  echo "round $r done"
done
# Boost.Program_options linked statically too (the shared library is a new runtime dependency).
"$CXX" "$OUT/po.o" -Wl,-Bstatic -lboost_program_options -Wl,-Bdynamic -o "$OUT/po-static"
for b in own cli11 po po-static; do strip -o "$OUT/$b.stripped" "$OUT/$b"; done

echo "end:   $(date -u +%FT%TZ) $(uptime)" | tee -a "$OUT/load.txt"

nb() { cat "$@" | grep -cv '^[[:space:]]*$'; }
pp() { "$CXX" "${FLAGS[@]}" "$@" -E -o - | grep -cv '^[[:space:]]*$'; }
{
  echo "lines,own:args.h+args.cc,$(nb "$SRC/cli/args.h" "$SRC/cli/args.cc")"
  echo "lines,own:own.cc,$(nb own.cc)"
  echo "lines,own:total,$(nb "$SRC/cli/args.h" "$SRC/cli/args.cc" own.cc)"
  echo "lines,own:tests/unit/args_test.cc,$(nb "$SRC/../tests/unit/args_test.cc" 2>/dev/null || echo NA)"
  echo "lines,cli11:total,$(nb cli11.cc)"
  echo "lines,po:total,$(nb po.cc)"
  echo "preprocessed,own:args.cc,$(pp -I"$SRC" "$SRC/cli/args.cc")"
  echo "preprocessed,own:own.cc,$(pp -I"$SRC" -I. own.cc)"
  echo "preprocessed,cli11:cli11.cc,$(pp -I. cli11.cc)"
  echo "preprocessed,po:po.cc,$(pp -I. po.cc)"
  for b in own cli11 po po-static; do echo "stripped_bytes,$b,$(stat -c %s "$OUT/$b.stripped")"; done
  echo "shared_lib_bytes,libfmt.so.9,$(stat -L -c %s /usr/lib/x86_64-linux-gnu/libfmt.so.9)"
  echo "shared_lib_bytes,libboost_program_options.so.1.74.0,$(stat -L -c %s /usr/lib/x86_64-linux-gnu/libboost_program_options.so.1.74.0)"
} > "$OUT/static.csv"

python3 - "$OUT" <<'PY'
import csv, statistics, sys, collections
out = sys.argv[1]
rows = collections.defaultdict(list)
for label, u, s, e in csv.reader(open(f"{out}/times.csv")):
    rows[label].append((float(u) + float(s), float(e)))
print(f"\n{'step':<16}{'n':>3}{'CPU med':>9}{'CPU min':>9}{'CPU max':>9}{'wall med':>10}")
for label, v in rows.items():
    cpu = [c for c, _ in v]; wall = [w for _, w in v]
    print(f"{label:<16}{len(v):>3}{statistics.median(cpu):>9.2f}{min(cpu):>9.2f}{max(cpu):>9.2f}"
          f"{statistics.median(wall):>10.2f}")
# own has two translation units: sum per round, then the median.
own = [a[0] + b[0] for a, b in zip(rows["own:args.cc"], rows["own:own.cc"])]
ownw = [a[1] + b[1] for a, b in zip(rows["own:args.cc"], rows["own:own.cc"])]
print(f"{'own:both TUs':<16}{len(own):>3}{statistics.median(own):>9.2f}{min(own):>9.2f}{max(own):>9.2f}"
      f"{statistics.median(ownw):>10.2f}")
print()
print(open(f"{out}/static.csv").read())
PY
