#!/bin/bash
# Build guestcheck's .deb from this checkout and run lintian on it.
#
#   build_deb.sh OUTDIR
#
# The build runs in a copy of the working tree (dpkg-buildpackage writes its results next to the source
# directory and leaves build trees inside it), so the checkout stays clean. Writes to OUTDIR:
#   guestcheck_<version>_all.deb, build.log (dpkg-buildpackage, with the unit tests it ran), lintian.txt
# Exit status: dpkg-buildpackage's if it failed, else 0 (lintian's verdict is read from lintian.txt).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
[[ $# -eq 1 ]] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "${WORK}"' EXIT

mkdir "${WORK}/guestcheck"
tar -C "${REPO}" --exclude=.git --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache \
    --exclude=.ruff_cache --exclude=.hypothesis --exclude=.pybuild --exclude=./build --exclude=.guestvm \
    --exclude='debian/guestcheck' --exclude='debian/.debhelper' --exclude='debian/tmp' -cf - . |
    tar -C "${WORK}/guestcheck" -xf -

# The unit tests that replay real captures find them beside the checkout, not beside the copy.
if [[ -z ${GUESTCHECK_SNAPSHOTS:-} && -d ${REPO}/../shared/reference/snapshots ]]; then
    GUESTCHECK_SNAPSHOTS=$(cd "${REPO}/../shared/reference/snapshots" && pwd)
    export GUESTCHECK_SNAPSHOTS
fi

# pyenv's python first on PATH breaks pybuild ("No module named build"): Debian's tools only.
cd "${WORK}/guestcheck"
start=$(date +%s)
if ! PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b >"${OUT}/build.log" 2>&1; then
    tail -n 60 "${OUT}/build.log" >&2
    exit 1
fi
echo "build_deb: dpkg-buildpackage took $(($(date +%s) - start)) s" >&2
debs=("${WORK}"/*.deb)
[[ ${#debs[@]} -eq 1 ]] || { echo "build_deb: expected one .deb, got ${debs[*]}" >&2; exit 1; }
cp "${debs[0]}" "${OUT}/"
# -E -I -L +pedantic: every tag down to pedantic, so the output shows what is (and is not) left.
lintian -EvIL +pedantic --color never "${OUT}/$(basename "${debs[0]}")" >"${OUT}/lintian.txt" 2>&1 || true
echo "${OUT}/$(basename "${debs[0]}")"
