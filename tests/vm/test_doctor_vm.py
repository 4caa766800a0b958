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


def test_e1000_guest_is_critical_on_that_nic(vm_image):
    code, doc = _doctor("e1000")
    nic = _main_nic(doc)
    assert (nic["driver_sysfs"], nic["driver_ethtool"], nic["kind"], nic["bus"]) == ("e1000", "e1000", "emulated",
                                                                                     "pci")
    assert nic["pci_id"] == "8086:100e"
    assert doc["facts"]["virt"]["hypervisor"] in ("qemu", "kvm")
    emulated = [f for f in doc["findings"] if f["id"] == "NIC-EMULATED"]
    assert [f["subject"] for f in emulated] == [nic["name"]]
    assert emulated[0]["severity"] == "critical" and "virtio-net-pci" in emulated[0]["fix"]
    assert code == 2 and doc["status"] == "critical"


def test_virtio_guest_is_not_critical(vm_image):
    code, doc = _doctor("virtio-net-pci", cpus=2)
    nic = _main_nic(doc)
    assert (nic["driver"], nic["kind"], nic["bus"]) == ("virtio_net", "paravirtual", "virtio")
    ids = {f["id"] for f in doc["findings"] if f["subject"] == nic["name"]}
    assert "NIC-EMULATED" not in ids and "NIC-PARAVIRTUAL" in ids
    # user-mode networking offers no offloads, and the host gave one queue pair to two vCPUs
    assert {"OFFLOAD-BACKEND-NONE", "QUEUES-SINGLE-VIRTIO"} <= ids
    assert code == 1 and doc["status"] == "warning"
