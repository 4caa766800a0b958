"""NIC drivers no capture covers: each classified from what sysfs and the ioctl would show."""

from __future__ import annotations

import pytest

from guestcheck.doctor import build_report
from guestcheck.facts import Channels, Feature
from guestcheck.judge import judged_facts
from tests.fakemachine import FakeMachine

CASES = [
    # name, add_nic kwargs, in a VM (DMI QEMU), expected kind
    ("vmxnet3", dict(driver="vmxnet3", pci_id="15ad:07b0"), True, "paravirtual"),
    ("hv_netvsc", dict(driver="hv_netvsc", bus="vmbus"), True, "paravirtual"),
    ("xen vif", dict(driver="vif", bus="xen"), True, "paravirtual"),
    ("aws ena", dict(driver="ena", pci_id="1d0f:ec20"), True, "paravirtual"),
    ("gcp gve", dict(driver="gve", pci_id="1ae0:0042"), True, "paravirtual"),
    ("azure mana", dict(driver="mana", pci_id="1414:00ba"), True, "paravirtual"),
    ("ibmveth", dict(driver="ibmveth", bus="vio"), True, "paravirtual"),
    ("virtio-mmio", dict(driver="virtio_net", bus="virtio"), True, "paravirtual"),
    ("ixgbevf", dict(driver="ixgbevf", pci_id="8086:10ed"), True, "sriov-vf"),
    ("iavf", dict(driver="iavf", pci_id="8086:1889"), True, "sriov-vf"),
    ("igbvf", dict(driver="igbvf", pci_id="8086:10ca"), True, "sriov-vf"),
    ("mlx5 VF by PCI id", dict(driver="mlx5_core", pci_id="15b3:1016"), True, "sriov-vf"),
    ("mlx4 VF by PCI id", dict(driver="mlx4_core", pci_id="15b3:1004"), True, "sriov-vf"),
    ("VF by physfn", dict(driver="bnxt_en", pci_id="14e4:16d7", physfn=True), False, "sriov-vf"),
    ("mlx5 PF", dict(driver="mlx5_core", pci_id="15b3:1017"), False, "physical"),
    ("e1000 in QEMU", dict(driver="e1000", pci_id="8086:100e", pci_subsystem_id="1af4:1100"), True, "emulated"),
    ("e1000e in QEMU", dict(driver="e1000e", pci_id="8086:10d3", pci_subsystem_id="8086:0000"), True, "emulated"),
    ("igb in QEMU", dict(driver="igb", pci_id="8086:10c9", pci_subsystem_id="1af4:1100"), True, "emulated"),
    ("e1000 in VMware", dict(driver="e1000", pci_id="8086:100f", pci_subsystem_id="15ad:0750"), True, "emulated"),
    ("8139too", dict(driver="8139too", pci_id="10ec:8139"), True, "emulated"),
    ("ne2k-pci", dict(driver="ne2k-pci", pci_id="10ec:8029"), True, "emulated"),
    ("pcnet32", dict(driver="pcnet32", pci_id="1022:2000"), True, "emulated"),
    ("e100", dict(driver="e100", pci_id="8086:1229"), True, "emulated"),
    ("tulip on Hyper-V", dict(driver="tulip", pci_id="1011:0009"), True, "emulated"),
    ("e1000e on bare metal", dict(driver="e1000e", pci_id="8086:15b8", pci_subsystem_id="1028:07a1"), False,
     "physical"),
    ("igb passed through", dict(driver="igb", pci_id="8086:1533", pci_subsystem_id="15d9:1533"), True, "physical"),
    ("ixgbe bare metal", dict(driver="ixgbe", pci_id="8086:10fb"), False, "physical"),
    ("no driver bound", dict(driver=None, pci_id="8086:10fb"), True, "unknown"),
    ("unknown usb driver", dict(driver="r8152", bus="usb"), False, "unknown"),
]


@pytest.mark.parametrize("label,kwargs,in_vm,kind", CASES, ids=[c[0] for c in CASES])
def test_driver_kind(tmp_path, label, kwargs, in_vm, kind):
    m = FakeMachine(tmp_path)
    if in_vm:
        m.set_dmi(sys_vendor="QEMU", product_name="Standard PC (Q35 + ICH9, 2009)")
    else:
        m.set_cpus(1, hypervisor_flag=False)
    m.add_nic("eth0", **kwargs)
    nic = judged_facts(m.collect()).nic("eth0")
    assert nic.kind == kind, nic.kind_reason
    assert nic.kind_reason


SOFTWARE = [
    ("veth", dict(drvinfo_driver="veth"), "veth"),
    ("bridge", dict(drvinfo_driver="bridge", marker="bridge", uevent_devtype="bridge"), "bridge"),
    ("bond", dict(drvinfo_driver="bonding", marker="bonding", uevent_devtype="bond"), "bond"),
    ("vlan", dict(drvinfo_driver="802.1Q VLAN Support", uevent_devtype="vlan"), "vlan"),
    ("tun", dict(drvinfo_driver="tun", marker="tun_flags"), "tun"),
    ("macvlan", dict(drvinfo_driver="macvlan", uevent_devtype="macvlan"), "macvlan"),
    ("ifb", dict(drvinfo_driver="ifb"), "ifb"),
    ("dummy", dict(drvinfo_driver="dummy"), "dummy"),
    ("wireguard", dict(drvinfo_driver="wireguard", uevent_devtype="wireguard"), "wireguard"),
]


@pytest.mark.parametrize("name,kwargs,software_type", SOFTWARE, ids=[s[0] for s in SOFTWARE])
def test_software_interfaces(tmp_path, name, kwargs, software_type):
    m = FakeMachine(tmp_path)
    m.add_nic(name, bus=None, **kwargs)
    nic = judged_facts(m.collect()).nic(name)
    assert (nic.kind, nic.software_type, nic.bus) == ("software", software_type, "none")


def test_virtio_takes_pci_ids_from_its_parent_function(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("ens3", driver="virtio_net", bus="virtio", virtio_parent_pci="1af4:1041")
    nic = judged_facts(m.collect()).nic("ens3")
    assert (nic.bus, nic.pci_id, nic.kind) == ("virtio", "1af4:1041", "paravirtual")


def test_ethtool_driver_is_used_when_sysfs_has_none(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", bus=None, drvinfo_driver="veth")
    nic = judged_facts(m.collect()).nic("eth0")
    assert (nic.driver_sysfs, nic.driver_ethtool, nic.driver) == (None, "veth", "veth")


FULL_OFFLOADS = {n: Feature(True, False) for n in (
    "tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-generic-segmentation", "rx-gro", "rx-checksum",
    "tx-checksum-ip-generic", "tx-scatter-gather")}


def _ids(m: FakeMachine, subject: str) -> set[str]:
    return {f.id for f in build_report(m.collect()).findings if f.subject == subject}


def test_offload_off_and_changeable_gives_the_ethtool_command(tmp_path):
    m = FakeMachine(tmp_path)
    features = dict(FULL_OFFLOADS, **{"tx-tcp-segmentation": Feature(False, False),
                                      "tx-tcp6-segmentation": Feature(False, False),
                                      "rx-gro": Feature(False, False)})
    m.add_nic("eth0", driver="virtio_net", bus="virtio", features=features)
    report = build_report(m.collect())
    fixes = {f.id: f.fix for f in report.findings if f.subject == "eth0"}
    assert fixes["OFFLOAD-TSO-OFF"] == "ethtool -K eth0 tso on"
    assert fixes["OFFLOAD-GRO-OFF"] == "ethtool -K eth0 gro on"
    assert "OFFLOAD-BACKEND-NONE" not in fixes
    assert report.status.label == "warning"


def test_offloads_on_down_interfaces_are_not_judged(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("eth1", driver="virtio_net", bus="virtio", operstate="down", flags=0x1002,
              features={k: Feature(False, False) for k in FULL_OFFLOADS})
    assert not any(i.startswith("OFFLOAD") for i in _ids(m, "eth1"))


def test_fixed_off_offloads_outside_virtio_are_not_blamed_on_the_host(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="e1000", pci_id="8086:100e", pci_subsystem_id="1af4:1100",
              features=dict(FULL_OFFLOADS, **{"tx-tcp-segmentation": Feature(False, True)}))
    assert "OFFLOAD-BACKEND-NONE" not in _ids(m, "eth0")


@pytest.mark.parametrize("vcpus,combined,maximum,expected", [
    (4, 1, 4, "QUEUES-FEWER-THAN-VCPUS"),
    (8, 2, 4, "QUEUES-FEWER-THAN-VCPUS"),
    (4, 4, 4, None),
    (2, 1, 1, "QUEUES-SINGLE-VIRTIO"),
    (1, 1, 1, None),
])
def test_queue_checks(tmp_path, vcpus, combined, maximum, expected):
    m = FakeMachine(tmp_path)
    m.set_cpus(vcpus)
    m.add_nic("eth0", driver="virtio_net", bus="virtio", features=FULL_OFFLOADS,
              channels=Channels(max_combined=maximum, combined=combined), queues=combined)
    report = build_report(m.collect())
    queue = [f for f in report.findings if f.id.startswith("QUEUES")]
    assert [f.id for f in queue] == ([expected] if expected else [])
    if expected == "QUEUES-FEWER-THAN-VCPUS":
        assert queue[0].fix == f"ethtool -L eth0 combined {min(vcpus, maximum)}"
    if expected == "QUEUES-SINGLE-VIRTIO":
        fix = queue[0].fix
        # every number filled in for this VM: no N left for the reader to work out
        assert "mq=on,vectors=6" in fix and "<driver name='vhost' queues='2'/>" in fix and "queues=2" in fix
        assert "N" not in fix.replace("NIC", "") and queue[0].fix_on == "host"
