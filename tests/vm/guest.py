"""Run a shell command inside a throwaway QEMU guest (Debian 12, TCG).

Why: guestcheck inspects NIC drivers, qdiscs and kernel modules that the host
kernel lacks or that need root; a real guest kernel gives real answers.

The guest boots the cached image from build_image.sh through a qcow2 overlay
(the cache stays pristine) plus a second ext4 disk holding a copy of the repo,
mounted at /mnt/src. The command's stdout, stderr and exit code are written to
that disk and read back with debugfs after the VM powers off, so output is
byte-exact however chatty the serial console is. Networking is only
``-nic user,restrict=on``: nothing can leave the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build_image.sh"
CACHE_DIR = Path(os.environ.get("GUESTCHECK_VM_CACHE", "/var/cache/guestcheck-vm"))
IMAGE_DIR = CACHE_DIR / "bookworm"
QEMU = "qemu-system-x86_64"
HOST_TOOLS = (QEMU, "qemu-img", "mkfs.ext4", "debugfs")
RUN_DIR = ".guestvm"  # on the second disk: init script, command, results
COPY_IGNORE = (
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".venv",
    ".tox",
    ".hypothesis",
    "build",
    "dist",
    "*.egg-info",
    RUN_DIR,
)
KERNEL_ARGS = "console=ttyS0 root=/dev/vda rw init=/sbin/guestcheck-vm-init panic=-1 quiet loglevel=3"

# PID 1 after the image's init stub has mounted /dev/vdb on /mnt/src.
INIT_SH = r"""#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
R=/mnt/src/.guestvm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# udev loads the NIC/virtio modules and names interfaces as on a real system.
/lib/systemd/systemd-udevd --daemon
udevadm trigger --type=subsystems --action=add
# cpu devices only pull in kvm and crypto modules: ~9 s under TCG, nothing network-related.
udevadm trigger --type=devices --action=add --subsystem-nomatch=cpu
udevadm settle --timeout=120
ip link set lo up
nic=$(ls /sys/class/net | grep -vx lo | head -n 1)
if [ -n "$nic" ]; then
    # QEMU user-net defaults; no DHCP client in the image.
    ip link set "$nic" up
    ip addr add 10.0.2.15/24 dev "$nic"
    ip route add default via 10.0.2.2 dev "$nic"
    # The link comes up a moment after `ip link set up` (e1000's watchdog takes seconds under TCG): wait for
    # it, bounded, so no test depends on how fast this guest happened to be.
    i=0
    while [ "$(cat "/sys/class/net/$nic/operstate")" != up ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    cat "/sys/class/net/$nic/operstate" >"$R/link_state"
fi
cut -d' ' -f1 /proc/uptime >"$R/boot_seconds"
cd /mnt/src
PYTHONPATH=/mnt/src /bin/bash "$R/command" </dev/null >"$R/stdout" 2>"$R/stderr"
echo $? >"$R/rc"
cd /
# A copy for humans reading the serial log (capped: TCG serial output is slow).
echo "===GUESTVM-STDOUT-BEGIN==="
head -c 65536 "$R/stdout"
echo "===GUESTVM-STDOUT-END rc=$(cat "$R/rc")==="
sync
umount /mnt/src 2>/dev/null || mount -o remount,ro /mnt/src
sync
echo o >/proc/sysrq-trigger
sleep 60
"""


class GuestError(RuntimeError):
    """The guest did not produce a result; the message ends with the serial log tail."""


class GuestTimeout(GuestError):
    """QEMU ran longer than the timeout and was killed."""


@dataclass
class GuestResult:
    """What the command did inside the guest."""

    stdout: str
    stderr: str
    exit_code: int
    serial_log: str
    boot_seconds: float  # guest uptime when the command started
    link_state: str  # the first NIC's operstate when the command started ("up" unless the bound ran out)
    wall_seconds: float  # host time from QEMU start to exit


@dataclass
class Image:
    """Paths of the cached guest image."""

    kernel: Path
    initrd: Path
    rootfs: Path


def image_paths() -> Image:
    return Image(IMAGE_DIR / "vmlinuz", IMAGE_DIR / "initrd.img", IMAGE_DIR / "rootfs.img")


def image_available() -> bool:
    """True if a completed build is in the cache (the stamp is written last)."""
    img = image_paths()
    return (IMAGE_DIR / "stamp").is_file() and all(p.is_file() for p in (img.kernel, img.initrd, img.rootfs))


def skip_reason() -> str | None:
    """Why VM tests cannot run on this machine, or None. Builds nothing."""
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing host tools: {', '.join(missing)} (apt: qemu-system-x86 qemu-utils e2fsprogs)"
    if not image_available() and (os.geteuid() != 0 or shutil.which("debootstrap") is None):
        return f"no guest image in {IMAGE_DIR} and building one needs root and debootstrap"
    return None


def ensure_image() -> Image:
    """Build the image if missing or outdated (minutes), else return at once."""
    subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdin=subprocess.DEVNULL)
    return image_paths()


def bench_ready() -> bool:
    """For a bench: the image built (minutes, the first time) and True, or why not said on stderr and False."""
    reason = skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return False
    ensure_image()
    return True


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _build_src_disk(staging: Path, disk: Path) -> None:
    """Make an ext4 image of ``staging`` without mounting anything."""
    total = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file() and not f.is_symlink())
    size_mb = 256 + 2 * total // 2**20
    with open(disk, "wb") as fh:
        fh.truncate(size_mb * 2**20)
    # No journal: debugfs reads the result back without replaying one.
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "guestsrc", "-d", str(staging), str(disk)],
        check=True,
        capture_output=True,
    )


def _stage(staging: Path, command: str, files: Mapping[str, str | bytes]) -> None:
    """Copy the repo (no .git or caches), the extra files and the run scripts."""
    repo = HERE.parents[1]
    shutil.copytree(repo, staging, symlinks=True, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    for rel, content in files.items():
        dest = (staging / rel).resolve()
        if Path(rel).is_absolute() or staging.resolve() not in dest.parents:
            raise ValueError(f"files key must be a relative path inside the repo: {rel!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            dest.write_text(content)
        else:
            dest.write_bytes(content)
    run = staging / RUN_DIR
    run.mkdir()
    (run / "init.sh").write_text(INIT_SH)
    (run / "command").write_text(command + "\n")


def _read_results(disk: Path, dest: Path) -> dict[str, bytes]:
    """Copy the results directory out of the ext4 image with debugfs."""
    dest.mkdir()
    subprocess.run(["debugfs", "-R", f"rdump /{RUN_DIR} .", str(disk)], cwd=dest, check=True, capture_output=True)
    out = dest / RUN_DIR
    names = ("stdout", "stderr", "rc", "boot_seconds", "link_state")
    return {n: (out / n).read_bytes() for n in names if (out / n).is_file()}


def _devices(overlay: Path, src_disk: Path, nic_model: str, virtio_mmio: bool) -> list[str]:
    """The root disk (vda), the repo disk (vdb), the NIC (user-mode, restricted) and an RNG."""
    if not virtio_mmio:
        return ["-drive", f"file={overlay},format=qcow2,if=virtio", "-drive", f"file={src_disk},format=raw,if=virtio",
                "-nic", f"user,restrict=on,model={nic_model}", "-device", "virtio-rng-pci"]
    return ["-drive", f"file={overlay},format=qcow2,if=none,id=vda", "-device", "virtio-blk-device,drive=vda",
            "-drive", f"file={src_disk},format=raw,if=none,id=vdb", "-device", "virtio-blk-device,drive=vdb",
            "-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-device,netdev=n0",
            "-device", "virtio-rng-device"]


def run_in_guest(
    command: str,
    *,
    nic_model: str = "virtio-net-pci",
    memory_mb: int = 512,
    cpus: int = 1,
    extra_qemu_args: Sequence[str] = (),
    files: Mapping[str, str | bytes] | None = None,
    timeout: float = 300,
    virtio_mmio: bool = False,
    extra_kernel_args: str = "",
    disk: Path | None = None,
    wrapper: Sequence[str] = (),
) -> GuestResult:
    """Boot a fresh guest, run ``command`` with bash in /mnt/src (the repo copy,
    PYTHONPATH=/mnt/src) as root, power off and return its output.

    ``files`` maps repo-relative paths to extra content placed in the copy.
    ``timeout`` covers boot plus command; on expiry QEMU is killed and
    GuestTimeout is raised. ``virtio_mmio`` attaches the disks, the NIC and
    the RNG as virtio-mmio devices, for machines without PCI
    (``extra_qemu_args=["-machine", "microvm"]``); ``extra_kernel_args`` are
    appended to the guest kernel's command line. ``disk``: boot on this qcow2 overlay (made on first use)
    instead of a throwaway one, so a second call with the same path is a reboot of the same guest.
    ``wrapper`` is put before the QEMU command (``ip netns exec NS``: a tap backend made in a private
    network namespace).
    """
    img = image_paths()
    if not image_available():
        raise GuestError(f"no guest image in {IMAGE_DIR}: run {BUILD_SCRIPT} or ensure_image()")
    with tempfile.TemporaryDirectory(prefix="guestvm-") as tmp_name:
        tmp = Path(tmp_name)
        overlay, src_disk, serial = disk or tmp / "root.qcow2", tmp / "src.img", tmp / "serial.log"
        _stage(tmp / "src", command, files or {})
        _build_src_disk(tmp / "src", src_disk)
        if not overlay.exists():
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(img.rootfs), str(overlay)],
                check=True,
                capture_output=True,
            )
        args = [
            *wrapper,
            QEMU,
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            str(memory_mb),
            "-smp",
            str(cpus),
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-monitor",
            "none",
            "-serial",
            f"file:{serial}",
            "-kernel",
            str(img.kernel),
            "-initrd",
            str(img.initrd),
            "-append",
            f"{KERNEL_ARGS} {extra_kernel_args}".strip(),
            *_devices(overlay, src_disk, nic_model, virtio_mmio),
            *extra_qemu_args,
        ]
        start = time.monotonic()
        try:
            proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            log = serial.read_text(errors="replace") if serial.exists() else ""
            raise GuestTimeout(
                f"guest did not power off within {timeout:.0f} s; serial log tail:\n{_tail(log)}"
            ) from None
        wall = time.monotonic() - start
        log = serial.read_text(errors="replace") if serial.exists() else ""
        results = _read_results(src_disk, tmp / "results")
        if "rc" not in results:
            raise GuestError(
                f"guest exited (qemu rc={proc.returncode}) without running the command; "
                f"qemu said: {proc.stdout.strip()!r}\nserial log tail:\n{_tail(log)}"
            )
        return GuestResult(
            stdout=results.get("stdout", b"").decode(errors="replace"),
            stderr=results.get("stderr", b"").decode(errors="replace"),
            exit_code=int(results["rc"]),
            serial_log=log,
            boot_seconds=float(results.get("boot_seconds", b"nan")),
            link_state=results.get("link_state", b"").decode(errors="replace").strip(),
            wall_seconds=wall,
        )
