"""The whole provider story in a real image: .deb -> generalised Debian 12 cloud image -> cloud-init first boots.

Three full systemd + cloud-init boots under QEMU TCG (about two minutes each), all on one disk and one
NoCloud instance-id, in this order:
  1. e1000 NIC; user-data writes /etc/guestcheck/guestcheck.conf (profile, metrics dir): first boot runs,
     flags NIC-EMULATED, applies the profile, writes report, metrics and stamp;
  2. the same instance again: first boot skips; then `cloud-init clean` (the test drop-in, asked by the
     kernel command line) must make the clean.d hook forget the instance;
  3. virtio-net NIC, same instance-id, user-data without a profile: a first boot again after the clean,
     and the virtio NIC is not flagged.
The guest powers itself off from a test-only ExecStopPost drop-in once guestcheck-firstboot ran; results
are read from the serial console and from the disk image with debugfs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from tests.unit.test_prometheus import parse

from . import guest

pytestmark = pytest.mark.vm

HERE = Path(__file__).resolve().parent
BUILD_DEB = HERE / "build_deb.sh"
BUILD_IMAGE = HERE / "build_cloud_image.sh"
TOOLS = (guest.QEMU, "debugfs", "mkfs.ext4", "debootstrap", "dpkg-buildpackage", "lintian", "mkfs.vfat", "mcopy")
INSTANCE = "iid-e2e-1"
FB = "guestcheck firstboot:"
BOOT_TIMEOUT = 900  # TCG on a shared 2-core machine; a normal boot takes about 2 minutes
CONF_WITH_PROFILE = """\
[firstboot]
profile = many-connections
textfile_dir = /var/lib/prometheus/node-exporter
sample = 0.5
"""
CONF_WITHOUT_PROFILE = "[firstboot]\nsample = 0.5\n"


def user_data(conf: str) -> str:
    """The README's example: cloud-init writes guestcheck's own settings file."""
    indented = "".join(f"      {line}\n" for line in conf.splitlines())
    return f"#cloud-config\nwrite_files:\n  - path: /etc/guestcheck/guestcheck.conf\n    content: |\n{indented}"


@dataclass
class CloudImage:
    kernel: Path
    initrd: Path
    rootfs: Path
    deb: Path
    lintian: str
    build_log: str
    seconds: dict = field(default_factory=dict)


@dataclass
class Boot:
    serial: str
    wall_seconds: float
    files: dict  # guest path -> content after power-off (None: absent)

    def lines(self, prefix: str) -> list[str]:
        """Serial lines holding `prefix`, from it on; the drop-in's echoes only when asked for by their tag."""
        own = prefix.startswith("GUESTCHECK-E2E")
        return [ln[ln.index(prefix):] for ln in self.serial.splitlines()
                if prefix in ln and (own or not ln.startswith("GUESTCHECK-E2E"))]


def skip_reason() -> Optional[str]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing host tools: {', '.join(missing)} (see tests/system-packages.txt)"
    if os.geteuid() != 0:
        return "building the image needs root (debootstrap, chroot)"
    return None


def _run(argv: list, timeout: float) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, f"{argv[0]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> CloudImage:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("cloud-image")
    t0 = time.monotonic()
    deb = Path(_run([BUILD_DEB, work / "deb"], timeout=900).stdout.strip().splitlines()[-1])
    t1 = time.monotonic()
    _run([BUILD_IMAGE, deb, work / "img"], timeout=2400)
    t2 = time.monotonic()
    return CloudImage(work / "img/vmlinuz", work / "img/initrd.img", work / "img/rootfs.img", deb,
                      (work / "deb/lintian.txt").read_text(), (work / "deb/build.log").read_text(),
                      {"deb": round(t1 - t0, 1), "image": round(t2 - t1, 1)})


def make_seed(path: Path, instance_id: str, user: str) -> Path:
    """A NoCloud seed: a vfat filesystem labelled CIDATA holding meta-data and user-data."""
    src = path.parent / f"{path.stem}-files"
    src.mkdir()
    (src / "meta-data").write_text(f"instance-id: {instance_id}\nlocal-hostname: e2e-guest\n")
    (src / "user-data").write_text(user)
    _run(["mkfs.vfat", "-n", "CIDATA", "-C", path, "2048"], timeout=60)
    _run(["mcopy", "-i", path, src / "meta-data", src / "user-data", "::/"], timeout=60)
    return path


def read_guest_file(disk: Path, path: str, scratch: Path) -> Optional[str]:
    """A file from the powered-off guest's ext4 disk, without mounting it."""
    out = scratch / "debugfs.out"
    out.unlink(missing_ok=True)
    subprocess.run(["debugfs", "-R", f"dump {path} {out}", str(disk)], capture_output=True, timeout=60, check=True)
    return out.read_text() if out.exists() else None


GUEST_FILES = ("/var/lib/guestcheck/report.json", "/var/lib/guestcheck/firstboot.json",
               "/var/lib/prometheus/node-exporter/guestcheck.prom", "/etc/sysctl.d/90-guestcheck.conf")


def boot(img: CloudImage, disk: Path, seed: Path, nic_model: str, extra_args: str, serial: Path) -> Boot:
    args = [
        guest.QEMU, "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1",
        "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none",
        "-serial", f"file:{serial}",
        "-kernel", str(img.kernel), "-initrd", str(img.initrd),
        "-append", f"console=ttyS0 root=/dev/vda rw panic=-1 {extra_args}".strip(),
        "-drive", f"file={disk},format=raw,if=virtio",
        "-drive", f"file={seed},format=raw,if=virtio,readonly=on",
        "-nic", f"user,restrict=on,model={nic_model}",
        "-device", "virtio-rng-pci",
    ]
    start = time.monotonic()
    try:
        subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BOOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        log = serial.read_text(errors="replace") if serial.exists() else ""
        raise guest.GuestTimeout(
            f"{nic_model} guest did not power off in {BOOT_TIMEOUT} s:\n{guest._tail(log)}") from None
    wall = time.monotonic() - start
    text = serial.read_text(errors="replace").replace("\r", "")
    print(f"\nboot {serial.stem} ({nic_model}): {wall:.0f} s wall")
    for line in text.splitlines():
        if FB in line or "GUESTCHECK-E2E" in line:
            print("  serial: " + line)
    files = {p: read_guest_file(disk, p, serial.parent) for p in GUEST_FILES}
    return Boot(text, wall, files)


@pytest.fixture(scope="module")
def boots(image, tmp_path_factory) -> dict[str, Boot]:
    work = tmp_path_factory.mktemp("boots")
    disk = work / "disk.img"
    _run(["cp", "--sparse=always", image.rootfs, disk], timeout=300)
    seed1 = make_seed(work / "seed1.img", INSTANCE, user_data(CONF_WITH_PROFILE))
    seed3 = make_seed(work / "seed3.img", INSTANCE, user_data(CONF_WITHOUT_PROFILE))
    return {
        "first": boot(image, disk, seed1, "e1000", "guestcheck.e2e=doctor", work / "1-e1000.log"),
        "again": boot(image, disk, seed1, "e1000", "guestcheck.e2e=clean", work / "2-e1000-again.log"),
        "virtio": boot(image, disk, seed3, "virtio-net-pci", "", work / "3-virtio.log"),
    }


def main_nic(report: dict) -> dict:
    nics = [n for n in report["facts"]["nics"] if n["kind"] != "software"]
    assert len(nics) == 1, nics
    return nics[0]


def test_deb_builds_with_its_unit_tests_and_lintian_is_clean(image):
    print(f"\ndpkg-buildpackage + lintian: {image.seconds['deb']} s, image layer: {image.seconds['image']} s")
    print("lintian -EvIL +pedantic:\n" + image.lintian)
    tests = [ln for ln in image.build_log.splitlines() if re.match(r"^=* ?\d+ passed", ln)]
    print("unit tests in the build: " + (tests[-1] if tests else "none found in the build log"))
    assert tests and " failed" not in tests[-1] and " error" not in tests[-1]
    assert not [ln for ln in image.lintian.splitlines() if ln.startswith(("E:", "W:"))], image.lintian


def test_first_boot_ran_once_and_flagged_the_e1000(boots):
    b = boots["first"]
    report = json.loads(b.files["/var/lib/guestcheck/report.json"])
    nic = main_nic(report)
    assert (nic["driver"], nic["kind"]) == ("e1000", "emulated")
    assert b.lines(f"{FB} instance {INSTANCE}") == [
        f"{FB} instance {INSTANCE} (cloud-init): first boot, checking the network"]
    assert any(ln.startswith(f"{FB} CRITICAL NIC-EMULATED [{nic['name']}] ") for ln in b.lines(FB))
    emulated = [f for f in report["findings"] if f["id"] == "NIC-EMULATED"]
    assert [(f["subject"], f["severity"]) for f in emulated] == [(nic["name"], "critical")]
    fb = report["firstboot"]
    assert (fb["instance_id"], fb["instance_source"], report["status"]) == (INSTANCE, "cloud-init", "critical")
    stamp = json.loads(b.files["/var/lib/guestcheck/firstboot.json"])
    assert stamp["instance_id"] == INSTANCE
    # the same summary reached the journal, and the unit ended cleanly without an ordering cycle
    assert any(ln.startswith("GUESTCHECK-E2E-JOURNAL: guestcheck firstboot: status CRITICAL")
               for ln in b.lines("GUESTCHECK-E2E-JOURNAL:"))
    assert "GUESTCHECK-E2E: firstboot unit finished: result=success status=0" in b.lines("GUESTCHECK-E2E:")
    assert "ordering cycle" not in b.serial.lower()


def test_first_boot_applied_the_profile_user_data_asked_for(boots):
    b = boots["first"]
    fb = json.loads(b.files["/var/lib/guestcheck/report.json"])["firstboot"]
    assert fb["profile"] == "many-connections"
    assert fb["profile_result"].startswith("applied, ") and fb["problems"] == []
    assert "GUESTCHECK-E2E: somaxconn=8192" in b.lines("GUESTCHECK-E2E:")
    assert "net.core.somaxconn = 8192" in b.files["/etc/sysctl.d/90-guestcheck.conf"]


def test_first_boot_wrote_the_metrics(boots):
    samples = parse(boots["first"].files["/var/lib/prometheus/node-exporter/guestcheck.prom"])
    checks = {lb["id"]: lb["severity"] for n, lb, _ in samples if n == "guestcheck_check_severity"}
    assert checks["NIC-EMULATED"] == "critical"
    assert ("guestcheck_status", {"status": "critical"}, 2.0) in samples


def test_packaged_units_verify_and_the_metrics_service_runs(boots):
    b = boots["first"]
    assert [ln for ln in b.lines("GUESTCHECK-E2E-VERIFY:") if "guestcheck" in ln] == []
    said = b.lines("GUESTCHECK-E2E:")
    assert "GUESTCHECK-E2E: metrics timer: disabled" in said  # opt-in
    # doctor exits 2 (critical) there, which the unit counts as success: it is a report, not a failure
    assert "GUESTCHECK-E2E: metrics service: success" in said
    before = [ln.split()[-1] for ln in said if ln.startswith("GUESTCHECK-E2E: metrics before: ")]
    after = [ln.split(": ", 2)[2] for ln in said if ln.startswith("GUESTCHECK-E2E: metrics after: ")]
    assert before and after, said
    assert 'guestcheck_status{status="critical"} 2' in after[0]
    words = after[0].split()
    rewritten_at = float(words[words.index("guestcheck_last_run_timestamp_seconds") + 1])
    assert rewritten_at > float(before[0])  # the service rewrote guestcheck.prom


def test_cloud_init_was_healthy(boots):
    """locale and openssh-server in the image: cloud-init reports no errors (they would hide ours)."""
    for b in boots.values():
        status = [ln for ln in b.lines("GUESTCHECK-E2E: cloud-init status:")]
        assert status and "status: done" in status[0], status


def test_second_boot_of_the_same_instance_skipped(boots):
    first = json.loads(boots["first"].files["/var/lib/guestcheck/report.json"])
    b = boots["again"]
    assert not b.lines("first boot, checking the network")
    assert b.lines(f"{FB} instance {INSTANCE}") == [
        f"{FB} instance {INSTANCE} (cloud-init) was already checked at {first['firstboot']['checked_at']}; "
        "skipping (`cloud-init clean` or `guestcheck firstboot --force` checks again)"]


def test_cloud_init_clean_forgets_the_instance(boots):
    b = boots["again"]
    said = b.lines("GUESTCHECK-E2E:")
    assert "GUESTCHECK-E2E: cloud-init clean rc=0" in said
    assert "GUESTCHECK-E2E: after clean: /var/lib/guestcheck/firstboot.json gone" in said
    assert "GUESTCHECK-E2E: after clean: /var/lib/guestcheck/report.json gone" in said
    assert b.files["/var/lib/guestcheck/firstboot.json"] is None


def test_virtio_boot_after_clean_is_a_first_boot_and_not_flagged(boots):
    b = boots["virtio"]
    assert b.lines(f"{FB} instance {INSTANCE}") == [
        f"{FB} instance {INSTANCE} (cloud-init): first boot, checking the network"]
    assert "NIC-EMULATED" not in b.serial
    report = json.loads(b.files["/var/lib/guestcheck/report.json"])
    nic = main_nic(report)
    assert (nic["driver"], nic["kind"]) == ("virtio_net", "paravirtual")
    ids = {f["id"] for f in report["findings"] if f["subject"] == nic["name"]}
    assert "NIC-PARAVIRTUAL" in ids and "NIC-EMULATED" not in ids
    assert report["firstboot"]["profile"] is None  # this instance's user-data asked for none
