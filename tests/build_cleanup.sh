# Sourced by the image and chroot builders (tests/vm/build_image.sh, build_cloud_image.sh,
# tests/install/build_chroot.sh): a build killed mid-debootstrap or mid-chroot leaves its /proc and /dev
# mounted inside the build directory. Unmount what is mounted under a directory, deepest first, then remove it
# without crossing into another filesystem, so neither a trap nor the next run's cleanup walks into /proc.

unmount_under() {
    local dir mount
    dir=$(realpath -m "$1")
    awk -v d="${dir}" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r mount; do
            umount "${mount}" 2>/dev/null || umount -l "${mount}" || true
        done
}

remove_build_dirs() {
    local dir
    for dir in "$@"; do
        [[ -e ${dir} ]] || continue
        unmount_under "${dir}"
        rm -rf --one-file-system "${dir}"
    done
}
