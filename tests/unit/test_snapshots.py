"""Every real capture in shared/reference is classified and judged the way the machine really was."""

from __future__ import annotations

import pytest

from guestcheck.doctor import build_report
from guestcheck.judge import judged_facts
from tests.fakemachine import REQUIRE_SNAPSHOTS, from_snapshot, load_snapshot, snapshot_names

pytestmark = pytest.mark.skipif(not snapshot_names(), reason="reference snapshots not found")

EXPECTED = {
    # snapshot: (hypervisor, main NIC, driver, kind, bus, findings on it, findings not on it)
    "qemu-e1000": ("qemu", "ens3", "e1000", "emulated", "pci", {"NIC-EMULATED", "OFFLOAD-RXCSUM-OFF"},
                   {"OFFLOAD-BACKEND-NONE"}),
    "qemu-rtl8139": ("qemu", "ens3", "8139cp", "emulated", "pci", {"NIC-EMULATED"}, set()),
    # captured with 2 vCPUs on one queue pair
    "qemu-virtio": ("qemu", "ens3", "virtio_net", "paravirtual", "virtio",
                    {"OFFLOAD-BACKEND-NONE", "QUEUES-SINGLE-VIRTIO"}, {"NIC-EMULATED"}),
    "qemu-virtio_tap_mq": ("qemu", "ens3", "virtio_net", "paravirtual", "virtio", {"NIC-PARAVIRTUAL"},
                           {"NIC-EMULATED", "OFFLOAD-BACKEND-NONE", "QUEUES-SINGLE-VIRTIO",
                            "QUEUES-FEWER-THAN-VCPUS"}),
    "cloud-microvm-virtio": (None, "eth0", "virtio_net", "paravirtual", "virtio",
                             {"QUEUES-SINGLE-VIRTIO", "NIC-PARAVIRTUAL"}, {"NIC-EMULATED"}),
}


def test_every_expected_capture_is_there():
    """A capture that vanished must not take its test with it (the skipif above covers only "none at all")."""
    missing = sorted(set(EXPECTED) - set(snapshot_names()))
    assert missing == [] or not REQUIRE_SNAPSHOTS, f"captures missing: {missing}"
    if missing:
        pytest.skip(f"captures missing: {missing}")


@pytest.mark.parametrize("name", snapshot_names())
def test_snapshot_is_classified(name, tmp_path):
    assert name in EXPECTED, f"new capture {name}: add its expectation"
    hv, nic_name, driver, kind, bus, present, absent = EXPECTED[name]
    machine = from_snapshot(name, tmp_path)
    facts = judged_facts(machine.collect())
    nic = facts.nic(nic_name)
    assert nic is not None
    assert (nic.driver, nic.driver_sysfs, nic.driver_ethtool) == (driver, driver, driver)
    assert (nic.kind, nic.bus) == (kind, bus)
    if hv is not None:
        assert facts.virt.hypervisor == hv
    else:  # no DMI in the microVM capture: only the hypervisor bit speaks
        assert facts.virt.hypervisor == "unknown"
    assert facts.virt.container is None
    lo = facts.nic("lo")
    assert lo is not None and lo.kind == "software"
    report = build_report(facts)
    ids = {f.id for f in report.findings if f.subject == nic_name}
    assert present <= ids, ids
    assert not (absent & ids), ids


def test_e1000_capture_is_critical_with_the_exact_fix(tmp_path):
    machine = from_snapshot("qemu-e1000", tmp_path)
    report = build_report(machine.collect())
    assert report.status.value == 2
    emulated = next(f for f in report.findings if f.id == "NIC-EMULATED")
    assert "<model type='virtio'/>" in emulated.fix
    assert "-device virtio-net-pci" in emulated.fix
    assert "qm set" in emulated.fix
    assert emulated.evidence["pci_id"] == "8086:100e"
    assert emulated.evidence["pci_subsystem_id"] == "1af4:1100"


def test_virtio_on_user_networking_blames_the_host_backend(tmp_path):
    machine = from_snapshot("qemu-virtio", tmp_path)
    report = build_report(machine.collect())
    backend = next(f for f in report.findings if f.id == "OFFLOAD-BACKEND-NONE")
    assert "TSO" in backend.summary and "TX checksum" in backend.summary
    assert "vnet_hdr=on" in backend.fix
    assert backend.evidence["tx-tcp-segmentation"] == "off [fixed]"
    assert backend.fix_on == "host"
    # GSO is changeable there but needs scatter-gather, which the backend holds off [fixed]: `ethtool -K ens3 gso
    # on` would fail, so no guest fix is printed and the backend finding names the cause
    assert "OFFLOAD-GSO-OFF" not in {f.id for f in report.findings}
    assert "GSO" in backend.summary
    assert "tx-generic-segmentation needs tx-scatter-gather, off [fixed] on ens3" in backend.evidence["cannot_change"]


def test_snapshot_cpu_and_queue_counts(tmp_path):
    machine = from_snapshot("qemu-virtio_tap_mq", tmp_path)
    facts = machine.collect()
    nic = facts.nic("ens3")
    assert facts.host.vcpus == load_snapshot("qemu-virtio_tap_mq")["nproc"] == 4
    assert nic.channels.combined == nic.channels.max_combined == 4
    assert nic.rx_queues == 4
