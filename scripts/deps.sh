#!/usr/bin/env bash
# Installs the Debian 12 packages dtkfs needs to build and test, when any is missing.
# Run as root (or with sudo available); otherwise it only says what is missing.
#   deps.sh          what building and packaging need (dpkg-dev: cpack -G DEB runs dpkg-shlibdeps)
#   deps.sh test     and what the tests need (the kernel source tarball for the workload test;
#                    ncdu and python3-prometheus-client read the export test's output, man-db
#                    checks the man page, acl and e2fsprogs serve the many-users tests; sqlite3,
#                    git and rsync run inside the mount in the real-programs test)
#   deps.sh bench    and the peers the benchmarks compare with (and fio, git for bench/run.sh)
set -euo pipefail
PACKAGES=(build-essential cmake ninja-build pkg-config libfuse3-dev fuse3 libboost-filesystem-dev
          libfmt-dev catch2 attr dpkg-dev)
case "${1:-build}" in
  build) ;;
  test) PACKAGES+=(clang clang-format libclang-rt-14-dev git linux-source-6.1 xz-utils acl
                   e2fsprogs ncdu python3-prometheus-client man-db sqlite3 rsync) ;;
  bench) PACKAGES+=(clang libclang-rt-14-dev git linux-source-6.1 xz-utils mergerfs bindfs gdu fio
                    hyperfine libcli11-dev libboost-program-options-dev) ;;
  *) echo "usage: deps.sh [build|test|bench]" >&2; exit 2 ;;
esac
# Ordinary users mount FUSE through /dev/fuse, which Debian's udev rules make 0666; some
# containers create it 0600, and then only root could mount. The tests mount as a user too.
if [[ "${1:-build}" == test && -c /dev/fuse && $(id -u) -eq 0 ]] &&
   [[ $(stat -c %a /dev/fuse) != 666 ]]; then
  echo "dtkfs: /dev/fuse is $(stat -c %a /dev/fuse); making it 0666 as on a stock Debian" >&2
  chmod 0666 /dev/fuse
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "dtkfs: installing ${missing[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
  echo "dtkfs: missing packages (${missing[*]}); run as root or install them" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
