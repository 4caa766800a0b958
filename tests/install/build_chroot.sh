#!/bin/bash
# A cached Debian 12 chroot for the .deb install test (tests/install/test_install.py) and the systemd-nspawn
# case of the platform matrix (tests/live/test_platform_live.py; systemd gives it systemd-detect-virt).
#
#   build_chroot.sh          prints the cached tree's path, building it first when missing or stale
#
# Output (outside the repo, beside the VM image): ${GUESTCHECK_VM_CACHE:-/var/cache/guestcheck-vm}/chroot-bookworm
# The tree has what guestcheck's Depends pull in, but not guestcheck: each test run installs the .deb into a
# copy. Atomic: built in a temp dir and renamed into place when complete. Needs root and Debian's mirror.
set -euo pipefail
# shellcheck source=../build_cleanup.sh
source "$(dirname "${BASH_SOURCE[0]}")/../build_cleanup.sh"

REV=2
SUITE=bookworm
PACKAGES=python3,python3-click,python3-psutil,python3-pyudev,python3-pyroute2,python3-distro,iproute2,ethtool,procps,systemd
VERSION="rev=${REV} suite=${SUITE} variant=minbase include=${PACKAGES}"
CACHE=${GUESTCHECK_VM_CACHE:-/var/cache/guestcheck-vm}
DEST=${CACHE}/chroot-${SUITE}

if [[ -f ${DEST}/.stamp && "$(cat "${DEST}/.stamp")" == "${VERSION}" ]]; then
    echo "${DEST}"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "build_chroot: must run as root (debootstrap)" >&2; exit 1; }
mkdir -p "${CACHE}"
WORK=$(mktemp -d "${CACHE}/.chroot-XXXXXX")
trap 'remove_build_dirs "${WORK}"' EXIT
echo "build_chroot: debootstrap ${SUITE} (a few minutes, once)" >&2
debootstrap --variant=minbase --include="${PACKAGES}" "${SUITE}" "${WORK}/root" >"${WORK}/debootstrap.log" 2>&1 ||
    { tail -n 30 "${WORK}/debootstrap.log" >&2; exit 1; }
rm -rf "${WORK}/root/var/cache/apt/archives/"*.deb
echo "${VERSION}" >"${WORK}/root/.stamp"
rm -rf "${DEST}"
mv "${WORK}/root" "${DEST}"
echo "${DEST}"
