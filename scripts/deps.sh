#!/usr/bin/env bash
# Installs the Debian 12 packages dtkfs needs to build and test, when any is missing.
# Run as root (or with sudo available); otherwise it only says what is missing.
set -euo pipefail
PACKAGES=(build-essential cmake ninja-build pkg-config libfuse3-dev fuse3 libboost-filesystem-dev
          libfmt-dev libcli11-dev catch2 attr clang libclang-rt-14-dev git)
if [[ "${DTKFS_WITH_PEERS:-0}" == 1 ]]; then
  PACKAGES+=(mergerfs bindfs gdu hyperfine linux-source-6.1 xz-utils)
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
