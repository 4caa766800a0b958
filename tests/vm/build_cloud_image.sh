#!/bin/bash
# Build a generalised Debian 12 cloud image with guestcheck's .deb installed, for tests/vm/test_image_e2e.py.
#
#   build_cloud_image.sh DEB OUTDIR
#
# Two layers, so a code change rebuilds only the cheap one:
#   base  (cached outside the repo, built once):
#         ${GUESTCHECK_VM_CACHE:-/var/cache/guestcheck-vm}/cloud-bookworm/{root.tar,vmlinuz,initrd.img,stamp}
#         debootstrap minbase + systemd, ifupdown/DHCP, openssh-server and guestcheck's Debian dependencies;
#         cloud-init installed with apt inside the chroot afterwards (debootstrap's resolver fails on it).
#   layer (every run, about a minute): OUTDIR/{rootfs.img,vmlinuz,initrd.img}
#         the base + `dpkg -i DEB` + a test-only drop-in that powers the VM off once guestcheck-firstboot ran,
#         then generalised as a provider would: cloud-init clean, empty /etc/machine-id, no SSH host keys.
# Needs root (debootstrap, chroot) and, for the base only, Debian's default mirror.
set -euo pipefail
# shellcheck source=../build_cleanup.sh
source "$(dirname "${BASH_SOURCE[0]}")/../build_cleanup.sh"

BASE_REV=1
SUITE=bookworm
BASE_PACKAGES=systemd-sysv,udev,kmod,iproute2,ifupdown,isc-dhcp-client,procps,openssh-server,python3,python3-click,python3-psutil,python3-pyudev,python3-pyroute2,python3-distro,ethtool,iperf3,linux-image-amd64
CHROOT_PACKAGES="cloud-init"
BASE_VERSION="rev=${BASE_REV} suite=${SUITE} include=${BASE_PACKAGES} apt=${CHROOT_PACKAGES}"

CACHE=${GUESTCHECK_VM_CACHE:-/var/cache/guestcheck-vm}
BASE=${CACHE}/cloud-${SUITE}

log() { echo "build_cloud_image: $*" >&2; }

[[ $# -eq 2 ]] || { echo "usage: $0 DEB OUTDIR" >&2; exit 2; }
DEB=$(readlink -f "$1")
OUT=$2
[[ -f ${DEB} ]] || { log "no such .deb: ${DEB}"; exit 2; }
[[ $(id -u) -eq 0 ]] || { log "must run as root (debootstrap, chroot)"; exit 1; }
for tool in debootstrap mkfs.ext4 chroot tar; do
    command -v "${tool}" >/dev/null || { log "missing ${tool} (apt: debootstrap e2fsprogs)"; exit 1; }
done

# /proc and /dev inside the chroot for apt and dpkg; the EXIT traps unmount them.
MOUNTED=()
chroot_mounts() {
    local root=$1
    mount -t proc proc "${root}/proc" && MOUNTED+=("${root}/proc")
    mount --bind /dev "${root}/dev" && MOUNTED+=("${root}/dev")
}
chroot_unmounts() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount "${MOUNTED[i]}" || umount -l "${MOUNTED[i]}" || true; done
    MOUNTED=()
}
in_chroot() {
    local root=$1
    shift
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "${root}" "$@"
}

base_is_current() {
    [[ -f ${BASE}/stamp && "$(cat "${BASE}/stamp")" == "${BASE_VERSION}" ]]
}

build_base() {
    local start tmp root
    start=$(date +%s)
    remove_build_dirs "${CACHE}"/.cloud-build.* "${CACHE}"/.cloud-old.*   # leftovers of interrupted builds
    tmp=$(mktemp -d "${CACHE}/.cloud-build.XXXXXX")
    root=${tmp}/root
    trap 'chroot_unmounts; remove_build_dirs "${tmp}"' EXIT
    log "debootstrap ${SUITE} (a few minutes)"
    debootstrap --variant=minbase --include="${BASE_PACKAGES}" "${SUITE}" "${root}" >"${tmp}/debootstrap.log" 2>&1 ||
        { tail -n 40 "${tmp}/debootstrap.log" >&2; exit 1; }
    printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"   # start no daemon inside the chroot
    chmod 755 "${root}/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "${root}/etc/resolv.conf"
    chroot_mounts "${root}"
    log "apt-get install ${CHROOT_PACKAGES} inside the chroot"
    in_chroot "${root}" apt-get -q update >"${tmp}/apt.log" 2>&1 &&
        in_chroot "${root}" apt-get -q install -y --no-install-recommends ${CHROOT_PACKAGES} >>"${tmp}/apt.log" 2>&1 ||
        { tail -n 40 "${tmp}/apt.log" >&2; exit 1; }
    in_chroot "${root}" apt-get clean
    chroot_unmounts
    rm -f "${root}/usr/sbin/policy-rc.d" "${root}/etc/resolv.conf"
    rm -rf "${root}"/var/lib/apt/lists/*

    # What a provider's image has: a root fs on the first disk, DHCP by cloud-init's ifupdown renderer.
    printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' >"${root}/etc/fstab"
    # cloud-init on a minimal image reports errors without a locale; NoCloud only, so ds-identify is quick;
    # one host key type, because generating RSA keys under TCG takes long.
    cat >"${root}/etc/cloud/cloud.cfg.d/90-guestcheck-test.cfg" <<'EOF'
locale: C.UTF-8
datasource_list: [NoCloud, None]
ssh_genkeytypes: [ed25519]
EOF

    kernels=("${root}"/boot/vmlinuz-*)
    initrds=("${root}"/boot/initrd.img-*)
    [[ ${#kernels[@]} -eq 1 && ${#initrds[@]} -eq 1 ]] || { log "expected one kernel and initrd"; exit 1; }
    cp "${kernels[0]}" "${tmp}/vmlinuz"
    cp "${initrds[0]}" "${tmp}/initrd.img"
    tar -C "${root}" --numeric-owner --xattrs -cf "${tmp}/root.tar" .
    rm -rf "${root}"
    echo "${BASE_VERSION}" >"${tmp}/stamp"   # last: marks the base complete
    rm -f "${tmp}"/*.log
    [[ -e ${BASE} ]] && mv "${BASE}" "${CACHE}/.cloud-old.$$"
    mv "${tmp}" "${BASE}"
    trap - EXIT
    rm -rf "${CACHE}/.cloud-old.$$"
    log "base built in $(($(date +%s) - start)) s"
}

mkdir -p "${CACHE}"
exec 9>"${CACHE}/.cloud.lock"   # one base build at a time; a second caller waits, then finds it current
flock 9
if base_is_current; then
    log "base image is current: ${BASE}"
else
    build_base
fi

# ---- the layer with the .deb ------------------------------------------------------------------------
start=$(date +%s)
mkdir -p "${OUT}"
WORK=$(mktemp -d "${OUT}/.layer.XXXXXX")
ROOT=${WORK}/root
trap 'chroot_unmounts; remove_build_dirs "${WORK}"' EXIT
mkdir "${ROOT}"
tar -C "${ROOT}" --numeric-owner --xattrs -xf "${BASE}/root.tar"
flock -u 9

cp "${DEB}" "${ROOT}/tmp/guestcheck.deb"
printf '#!/bin/sh\nexit 101\n' >"${ROOT}/usr/sbin/policy-rc.d"
chmod 755 "${ROOT}/usr/sbin/policy-rc.d"
chroot_mounts "${ROOT}"
log "dpkg -i $(basename "${DEB}")"
in_chroot "${ROOT}" dpkg -i /tmp/guestcheck.deb
in_chroot "${ROOT}" systemctl is-enabled guestcheck-firstboot.service >/dev/null ||
    { log "guestcheck-firstboot.service is not enabled after install"; exit 1; }
# node_exporter's textfile directory, as prometheus-node-exporter's package makes it: guestcheck never creates
# a textfile directory (a typo would be one node_exporter never reads), and the image has no node_exporter
mkdir -p "${ROOT}/var/lib/prometheus/node-exporter"

# Test only: once guestcheck-firstboot ran (whatever its result), show the journal and the tuned sysctl on
# the console, run `cloud-init clean` when the kernel command line asks for it, and power off.
mkdir -p "${ROOT}/etc/systemd/system/guestcheck-firstboot.service.d"
cat >"${ROOT}/etc/systemd/system/guestcheck-firstboot.service.d/90-e2e-poweroff.conf" <<'EOF'
[Service]
ExecStopPost=/usr/local/sbin/guestcheck-e2e-finish
EOF
cat >"${ROOT}/usr/local/sbin/guestcheck-e2e-finish" <<'EOF'
#!/bin/sh
# Test only (tests/vm/test_image_e2e.py): report on the serial console, then power off.
say() { echo "GUESTCHECK-E2E: $*" >/dev/ttyS0; }
say "firstboot unit finished: result=${SERVICE_RESULT:-?} status=${EXIT_STATUS:-?}"
journalctl -b -o cat -u guestcheck-firstboot.service --no-pager | grep '^guestcheck firstboot:' |
    sed 's/^/GUESTCHECK-E2E-JOURNAL: /' >/dev/ttyS0
say "somaxconn=$(cat /proc/sys/net/core/somaxconn)"
say "cloud-init status: $(cloud-init status 2>&1 | tr '\n' ' ')"
if grep -qw guestcheck.e2e=doctor /proc/cmdline; then
    guestcheck doctor --sample 0.5 2>&1 | sed 's/^/GUESTCHECK-E2E-DOCTOR: /' >/dev/ttyS0
    # the packaged units as systemd reads them, and the (opt-in) metrics service run once by hand
    systemd-analyze verify --man=no /lib/systemd/system/guestcheck-firstboot.service \
        /lib/systemd/system/guestcheck-metrics.service /lib/systemd/system/guestcheck-metrics.timer 2>&1 |
        sed 's/^/GUESTCHECK-E2E-VERIFY: /' >/dev/ttyS0
    say "metrics timer: $(systemctl is-enabled guestcheck-metrics.timer 2>&1)"
    prom=/var/lib/prometheus/node-exporter/guestcheck.prom
    say "metrics before: $(grep -h '^guestcheck_last_run' "$prom")"
    sleep 1
    systemctl start guestcheck-metrics.service
    say "metrics service: $(systemctl show -p Result --value guestcheck-metrics.service)"
    say "metrics after: $(grep -h -e '^guestcheck_last_run' -e '^guestcheck_status' "$prom" | tr '\n' ' ')"
fi
if grep -qw guestcheck.e2e=clean /proc/cmdline; then
    cloud-init clean --logs >/dev/ttyS0 2>&1
    say "cloud-init clean rc=$?"
    for f in /var/lib/guestcheck/firstboot.json /var/lib/guestcheck/report.json; do
        if [ -e "$f" ]; then say "after clean: $f present"; else say "after clean: $f gone"; fi
    done
fi
sync
say "powering off"
systemctl --no-block poweroff
EOF
chmod 755 "${ROOT}/usr/local/sbin/guestcheck-e2e-finish"

log "generalise: cloud-init clean, empty machine-id, no SSH host keys"
in_chroot "${ROOT}" cloud-init clean --logs
chroot_unmounts
rm -f "${ROOT}/usr/sbin/policy-rc.d" "${ROOT}/tmp/guestcheck.deb" "${ROOT}"/etc/ssh/ssh_host_*
: >"${ROOT}/etc/machine-id"
rm -f "${ROOT}/var/lib/dbus/machine-id"

used_mb=$(du -sm "${ROOT}" | cut -f1)
size_mb=$((used_mb * 13 / 10 + 512))
truncate -s "${size_mb}M" "${WORK}/rootfs.img"
mkfs.ext4 -q -F -L cloudroot -d "${ROOT}" "${WORK}/rootfs.img"
cp "${BASE}/vmlinuz" "${BASE}/initrd.img" "${WORK}/"
rm -rf "${ROOT}"
mv -f "${WORK}/rootfs.img" "${WORK}/vmlinuz" "${WORK}/initrd.img" "${OUT}/"
rmdir "${WORK}"
trap - EXIT
log "layer built in $(($(date +%s) - start)) s: ${OUT}/rootfs.img (${used_mb} MB of files, ${size_mb} MB image)"
