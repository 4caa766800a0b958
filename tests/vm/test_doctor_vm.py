"""doctor inside real QEMU guests: an emulated e1000 must be critical, virtio-net must not."""

from __future__ import annotations

import json

import pytest

from . import guest

DOCTOR = "python3 -m guestcheck doctor --json --sample 0"

pytestmark = pytest.mark.vm


def _doctor(nic_model: str, cpus: int = 1) -> tuple[int, dict]:
    result = guest.run_in_guest(DOCTOR, nic_model=nic_model, cpus=cpus, timeout=420)
    assert "Traceback" not in result.stderr, result.stderr
    return result.exit_code, json.loads(result.stdout)


def _main_nic(doc: dict) -> dict:
    nics = [n for n in doc["facts"]["nics"] if n["kind"] != "software"]
    assert len(nics) == 1, nics
    return nics[0]


def _reports(stdout: str) -> list[tuple[int, dict]]:
    """Each doctor document and the exit code echoed after it as `rc=N`."""
    out, decoder, rest = [], json.JSONDecoder(), stdout.lstrip()
    while rest:
        doc, end = decoder.raw_decode(rest)
        line, _, rest = rest[end:].lstrip().partition("\n")
        out.append((int(line.removeprefix("rc=")), doc))
        rest = rest.lstrip()
    return out


def test_e1000_guest_is_critical_on_that_nic(vm_image):
    # the harness waits for the link; then the same doctor with the link taken down, as while it comes up
    nic = "$(ls /sys/class/net | grep -vx lo | head -n 1)"
    result = guest.run_in_guest(f'{DOCTOR}; echo "rc=$?"; ip link set dev "{nic}" down; {DOCTOR}; echo "rc=$?"',
                                nic_model="e1000", timeout=420)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.link_state == "up"
    (code, doc), (down_code, down) = _reports(result.stdout)
    nic = _main_nic(doc)
    assert (nic["driver_sysfs"], nic["driver_ethtool"], nic["kind"], nic["bus"]) == ("e1000", "e1000", "emulated",
                                                                                     "pci")
    assert nic["pci_id"] == "8086:100e"
    # hwdb's names and udev's chosen name, from the guest's udev database
    assert nic["vendor"] == "Intel Corporation" and nic["model"].startswith("82540EM Gigabit Ethernet Controller")
    assert nic["udev_names"]["ID_NET_NAME"] == nic["name"]
    assert doc["facts"]["virt"]["hypervisor"] in ("qemu", "kvm")
    emulated = [f for f in doc["findings"] if f["id"] == "NIC-EMULATED"]
    assert [f["subject"] for f in emulated] == [nic["name"]]
    assert emulated[0]["severity"] == "critical" and "virtio-net-pci" in emulated[0]["fix"]
    assert code == 2 and doc["status"] == "critical"
    # link down: the VM's configuration is still wrong, and doctor still says so
    assert _main_nic(down)["operstate"] == "down"
    emulated = [f for f in down["findings"] if f["id"] == "NIC-EMULATED"]
    assert [(f["subject"], f["severity"], f["evidence"]["operstate"]) for f in emulated] == [
        (nic["name"], "critical", "down")]
    assert down_code == 2 and down["status"] == "critical"


def test_virtio_guest_is_not_critical(vm_image):
    code, doc = _doctor("virtio-net-pci", cpus=2)
    nic = _main_nic(doc)
    assert (nic["driver"], nic["kind"], nic["bus"]) == ("virtio_net", "paravirtual", "virtio")
    assert nic["vendor"] == "Red Hat, Inc." and "Virtio" in nic["model"], (nic["vendor"], nic["model"])
    assert nic["udev_names"]["ID_NET_NAME"] == nic["name"]
    ids = {f["id"] for f in doc["findings"] if f["subject"] == nic["name"]}
    assert "NIC-EMULATED" not in ids and "NIC-PARAVIRTUAL" in ids
    # user-mode networking offers no offloads, and the host gave one queue pair to two vCPUs
    assert {"OFFLOAD-BACKEND-NONE", "QUEUES-SINGLE-VIRTIO"} <= ids
    assert code == 1 and doc["status"] == "warning"
