#!/bin/bash
# Build the cached Debian 12 test-guest image used by tests/vm/guest.py.
#
# Output (outside the repo, so builds survive fresh checkouts):
#   ${GUESTCHECK_VM_CACHE:-/var/cache/guestcheck-vm}/bookworm/{vmlinuz,initrd.img,rootfs.img,stamp}
# Idempotent: exits at once when the stamp matches IMAGE_VERSION below.
# Atomic: builds in a temp dir and renames it into place only when complete,
# so an interrupted build never looks like a good cache.
# Needs root (debootstrap) and network access to Debian's default mirror.
set -euo pipefail
# shellcheck source=../build_cleanup.sh
source "$(dirname "${BASH_SOURCE[0]}")/../build_cleanup.sh"

# Bump IMAGE_REV when anything baked into the image changes (e.g. the init stub, the initramfs modules).
IMAGE_REV=3
SUITE=bookworm
PACKAGES=python3,python3-click,python3-psutil,python3-pyudev,python3-pyroute2,python3-distro,ethtool,iperf3,iproute2,kmod,udev,procps,systemd,linux-image-amd64
IMAGE_VERSION="rev=${IMAGE_REV} suite=${SUITE} variant=minbase include=${PACKAGES}"

CACHE=${GUESTCHECK_VM_CACHE:-/var/cache/guestcheck-vm}
DEST=${CACHE}/${SUITE}

log() { echo "build_image: $*" >&2; }

report() {
    echo "image:   ${DEST}/rootfs.img"
    echo "kernel:  ${DEST}/vmlinuz"
    echo "initrd:  ${DEST}/initrd.img"
    echo "stamp:   ${DEST}/stamp ($(cat "${DEST}/stamp"))"
}

is_current() {
    [[ -f ${DEST}/stamp && "$(cat "${DEST}/stamp")" == "${IMAGE_VERSION}" ]]
}

if is_current; then
    report
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (debootstrap)"
    exit 1
fi

# Install missing host tools; apt's lock timeout waits for a concurrent apt/dpkg run.
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=1200 install -y "${need[@]}" ||
        { apt-get -o DPkg::Lock::Timeout=1200 update &&
          apt-get -o DPkg::Lock::Timeout=1200 install -y "${need[@]}"; }
fi

mkdir -p "${CACHE}"
# One build at a time; a second caller waits, then finds the cache current.
exec 9>"${CACHE}/.lock"
flock 9
if is_current; then
    report
    exit 0
fi
remove_build_dirs "${CACHE}"/.build.* "${CACHE}"/.old.*   # leftovers of interrupted builds, unmounted first

start=$(date +%s)
TMP=$(mktemp -d "${CACHE}/.build.XXXXXX")
chmod 755 "${TMP}"   # mktemp makes it 0700; non-root users boot the image too
trap 'remove_build_dirs "${TMP}"' EXIT
ROOT=${TMP}/root

log "debootstrap ${SUITE} into ${ROOT} (takes a few minutes)"
debootstrap --variant=minbase --include="${PACKAGES}" "${SUITE}" "${ROOT}" >"${TMP}/debootstrap.log" 2>&1 ||
    { tail -n 40 "${TMP}/debootstrap.log" >&2; exit 1; }

# Small initrd: only what mounting root needs. Debian's default (MODULES=most,
# 34 MB) costs ~10 s of a ~30 s TCG boot; NIC drivers load later from the root fs.
echo MODULES=list >"${ROOT}/etc/initramfs-tools/conf.d/guestcheck-vm"
printf '%s\n' virtio_pci virtio_mmio virtio_blk ext4 >>"${ROOT}/etc/initramfs-tools/modules"
chroot "${ROOT}" update-initramfs -u -k all >>"${TMP}/debootstrap.log" 2>&1 ||
    { tail -n 40 "${TMP}/debootstrap.log" >&2; exit 1; }

# Kernel and initrd next to the image, for qemu -kernel/-initrd.
kernels=("${ROOT}"/boot/vmlinuz-*)
initrds=("${ROOT}"/boot/initrd.img-*)
[[ ${#kernels[@]} -eq 1 && -f ${kernels[0]} ]] || { log "expected one kernel, got: ${kernels[*]}"; exit 1; }
[[ ${#initrds[@]} -eq 1 && -f ${initrds[0]} ]] || { log "expected one initrd, got: ${initrds[*]}"; exit 1; }
cp "${kernels[0]}" "${TMP}/vmlinuz"
cp "${initrds[0]}" "${TMP}/initrd.img"

# PID 1 stub: the per-run script lives on the second disk (/dev/vdb), written by guest.py.
# The initramfs has already moved /proc, /sys and /dev into the root fs.
cat >"${ROOT}/sbin/guestcheck-vm-init" <<'EOF'
#!/bin/sh
# init= for guestcheck test guests: mount the per-run disk and run its script.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /mnt/src
if mount -t ext4 /dev/vdb /mnt/src && [ -f /mnt/src/.guestvm/init.sh ]; then
    exec /bin/sh /mnt/src/.guestvm/init.sh
fi
echo "guestcheck-vm-init: no /dev/vdb with .guestvm/init.sh" >&2
echo o >/proc/sysrq-trigger
EOF
chmod 755 "${ROOT}/sbin/guestcheck-vm-init"
mkdir -p "${ROOT}/mnt/src"
echo guestvm >"${ROOT}/etc/hostname"
rm -rf "${ROOT}"/var/cache/apt/archives/*.deb "${ROOT}"/var/lib/apt/lists/*

# ext4 image straight from the directory: no loop mount needed.
used_mb=$(du -sm "${ROOT}" | cut -f1)
size_mb=$((used_mb * 13 / 10 + 256))
log "mkfs.ext4 -d (${used_mb} MB of files, ${size_mb} MB image)"
truncate -s "${size_mb}M" "${TMP}/rootfs.img"
mkfs.ext4 -q -F -L guestroot -d "${ROOT}" "${TMP}/rootfs.img"
rm -rf "${ROOT}"

echo "${IMAGE_VERSION}" >"${TMP}/stamp"   # written last: marks the build complete
rm -f "${TMP}/debootstrap.log"
if [[ -e ${DEST} ]]; then
    mv "${DEST}" "${CACHE}/.old.$$"
fi
mv "${TMP}" "${DEST}"
trap - EXIT
rm -rf "${CACHE}/.old.$$"
log "built in $(($(date +%s) - start)) s"
report
