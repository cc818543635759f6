#!/usr/bin/env bash
# The Debian package, built from the build tree as README says (`cpack -G DEB`), then read
# without installing it: its files (dpkg-deb -c) are exactly the binary, the mount.dtkfs
# link, the gzipped man page and the bash completion; its Depends (dpkg-deb -I) hold fuse3
# and the package of every shared library the binary needs; it has no maintainer scripts
# (nothing is created at install, so removal leaves nothing). Unpacked in a temporary
# directory (dpkg-deb -x), the binary answers --help, the link runs it as mount(8)'s helper,
# man(1) shows the page, and the completion completes commands, options and mount options.
#   deb_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dtkfs-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "package: $*" >&2; failures=$((failures + 1)); }

for tool in cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || { echo "package: $tool missing (scripts/deps.sh)" >&2; exit 1; }
done
# -B: the package and CPack's staging tree go to the temporary directory, not the build tree.
if ! (cd "$build" && cpack -G DEB -B "$tmp/out") >"$tmp/cpack.log" 2>&1; then
  cat "$tmp/cpack.log" >&2
  exit 1
fi
debs=("$tmp"/out/dtkfs_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || { echo "package: no single .deb in $tmp/out" >&2; exit 1; }
deb=${debs[0]}

# Contents: exactly these files (and their directories).
expected=$(printf '%s\n' "-rwxr-xr-x ./usr/bin/dtkfs" \
  "lrwxrwxrwx ./usr/sbin/mount.dtkfs -> ../bin/dtkfs" \
  "-rw-r--r-- ./usr/share/bash-completion/completions/dtkfs" \
  "-rw-r--r-- ./usr/share/man/man1/dtkfs.1.gz" | sort)
actual=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { $2 = $3 = $4 = $5 = ""; print }' |
         sed -E 's/ +/ /g' | sort)
[[ $actual == "$expected" ]] || fail "contents differ; expected:
$expected
got:
$actual"
dpkg-deb -c "$deb" | awk '{ print $2 }' | grep -qv '^root/root$' && fail "files not owned by root"

# Control: Depends, and no maintainer scripts.
depends=$(dpkg-deb -f "$deb" Depends)
members=$(dpkg-deb -I "$deb" | awk '/^ +[0-9]+ bytes/ { print $5 }')
for script in preinst postinst prerm postrm conffiles; do
  grep -qx "$script" <<<"$members" && fail "has a $script: the package should create nothing"
done
has_dep() { tr ',' '\n' <<<"$depends" | sed -E 's/^ +//; s/ .*//' | grep -qx "$1"; }
has_dep fuse3 || fail "Depends lacks fuse3: $depends"
dpkg-deb -x "$deb" "$tmp/root"
bin=$tmp/root/usr/bin/dtkfs
# Every shared library the binary needs (ldd: the ones this machine resolves), by package.
while read -r lib; do
  pkg=$(dpkg -S "$lib" 2>/dev/null | head -n 1 | cut -d: -f1) || true
  [[ -z $pkg ]] && pkg=$(dpkg -S "*/$(basename "$lib")" 2>/dev/null | head -n 1 | cut -d: -f1)
  [[ -n $pkg ]] || { fail "no package owns $lib"; continue; }
  has_dep "$pkg" || fail "Depends lacks $pkg (for $lib): $depends"
done < <(ldd "$bin" | awk '$3 ~ /^\// { print $3 }')
has_dep libfuse3-3 || fail "Depends lacks libfuse3-3: $depends"

# The unpacked files work.
"$bin" --help | grep -q '^Commands:' || fail "dtkfs --help prints no commands"
"$bin" --version | grep -q '^dtkfs ' || fail "dtkfs --version"
helper=$tmp/root/usr/sbin/mount.dtkfs
[[ $(readlink -f "$helper") == "$(readlink -f "$bin")" ]] || fail "mount.dtkfs does not lead to dtkfs"
"$helper" --help | grep -q '^Mount options' || fail "mount.dtkfs --help is not mount's help"
"$helper" "$tmp/none" "$tmp/none2" -f -o rw || fail "mount.dtkfs -f (fake) did not exit 0"
page=$tmp/root/usr/share/man/man1/dtkfs.1.gz
gzip -t "$page" || fail "the man page is not gzip"
if command -v man >/dev/null; then
  rendered=$(LC_ALL=C.UTF-8 MANWIDTH=100 man -l "$page" 2>/dev/null) || fail "man -l failed"
  grep -q 'MOUNT OPTIONS' <<<"$rendered" || fail "man -l shows no MOUNT OPTIONS"
else
  fail "man missing (scripts/deps.sh test installs man-db)"
fi
cmp -s <(gzip -dc "$page") "$src/docs/dtkfs.1" ||
  fail "the packaged man page is not docs/dtkfs.1"

# Completion, in a clean bash with the unpacked dtkfs first in PATH.
completion=$tmp/root/usr/share/bash-completion/completions/dtkfs
got=$(PATH="$tmp/root/usr/bin:$PATH" bash --norc -c '
  source "$1"
  t() { COMP_LINE=$1; COMP_POINT=${#COMP_LINE}; read -r -a COMP_WORDS <<<"$1 "
        [[ $1 == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _dtkfs; echo "${COMPREPLY[*]}"; }
  t "dtkfs "; t "dtkfs du --"; t "dtkfs mount -o li"; t "dtkfs top --de"' bash "$completion")
mapfile -t lines <<<"$got"
for cmd in $("$bin" --help | awk '/^Commands:/ { on = 1; next } on && NF == 0 { exit } on { print $1 }'); do
  grep -qw -- "$cmd" <<<"${lines[0]}" || fail "completion lacks the command $cmd: ${lines[0]}"
done
[[ ${lines[1]} == *--index* && ${lines[1]} == *--json* ]] || fail "completion of du options: ${lines[1]}"
[[ ${lines[2]} == list_totals ]] || fail "completion of -o li: ${lines[2]}"
[[ ${lines[3]} == --depth ]] || fail "completion of top --de: ${lines[3]}"
# Regression: with `set -u` and COMP_WORDS alone (no COMP_LINE), the function stopped on an
# unbound variable; it completes from the words instead.
got=$(PATH="$tmp/root/usr/bin:$PATH" bash --norc -uc '
  source "$1"
  COMP_WORDS=(dtkfs export --format ""); COMP_CWORD=3; COMPREPLY=(); _dtkfs; echo "${COMPREPLY[*]}"
  COMP_WORDS=(dtkfs); COMP_CWORD=1; COMPREPLY=(); _dtkfs; echo "${COMPREPLY[*]}"' \
  bash "$completion" 2>&1) || fail "completion under set -u without COMP_LINE failed: $got"
mapfile -t lines <<<"$got"
[[ ${lines[0]} == "ncdu prometheus" ]] || fail "completion of export --format under set -u: $got"
[[ ${lines[1]} == *export* ]] || fail "completion past the last word under set -u: $got"

if ((failures > 0)); then
  echo "package: $failures problems in $(basename "$deb")" >&2
  exit 1
fi
echo "package: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB), Depends: $depends"
