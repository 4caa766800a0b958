"""collect/pci.py: network-class PCI functions and the interfaces they became (issue 19: virtio-net's netdev sits
under the function's virtioN device, so `pci_network[].interfaces` was empty for every virtio NIC)."""

from __future__ import annotations

import os

import pytest

from guestcheck.collect.pci import collect_pci_network
from tests.fakemachine import FakeMachine, from_snapshot, load_snapshot


def _pci_function(m: FakeMachine, device_dir: str, pci_id: str, driver: str) -> None:
    """The PCI function's own attributes and its /sys/bus/pci/devices entry, as the kernel lays them out."""
    vendor, device = pci_id.split(":")
    m.write(f"{device_dir}/class", "0x020000\n")
    m.write(f"{device_dir}/vendor", f"0x{vendor}\n")
    m.write(f"{device_dir}/device", f"0x{device}\n")
    m.write(f"sys/bus/pci/drivers/{driver}/.keep", "")
    m.symlink(f"{device_dir}/driver", str(m.base / f"sys/bus/pci/drivers/{driver}"))
    m.symlink(f"sys/bus/pci/devices/{os.path.basename(device_dir)}", str(m.base / device_dir))


@pytest.mark.parametrize("name", ["qemu-virtio", "qemu-virtio_tap_mq", "cloud-microvm-virtio"])
def test_a_virtio_net_function_lists_the_interface_under_its_virtio_device(tmp_path, name):
    """The captures' device_path (/sys/devices/pci0000:00/0000:00:03.0/virtio0): the netdev is
    .../virtio0/net/IFACE (where /sys/class/net/IFACE points on the real machine)."""
    snap = load_snapshot(name)
    m = from_snapshot(name, tmp_path)
    expected = []
    for nic in snap["nics"]:
        path = nic.get("device_path") or ""
        if nic.get("subsystem") != "virtio":
            continue
        virtio_dir = path.lstrip("/")  # sys/devices/pci0000:00/0000:00:03.0/virtio0
        m.write(f"{virtio_dir}/net/{nic['name']}/mtu", f"{nic['mtu']}\n")
        _pci_function(m, os.path.dirname(virtio_dir), "1af4:1000", "virtio-pci")
        expected.append((os.path.basename(os.path.dirname(virtio_dir)), [nic["name"]]))
    assert expected, "the capture has a virtio NIC"
    got = [(f.address, f.interfaces) for f in collect_pci_network(m.roots)]
    assert got == expected


def test_a_function_that_is_the_netdev_itself_and_one_with_none(tmp_path):
    m = FakeMachine(tmp_path)
    _pci_function(m, "sys/devices/pci0000:00/0000:00:04.0", "8086:100e", "e1000")
    m.write("sys/devices/pci0000:00/0000:00:04.0/net/ens4/mtu", "1500\n")
    _pci_function(m, "sys/devices/pci0000:00/0000:00:05.0", "1af4:1000", "virtio-pci")
    m.write("sys/devices/pci0000:00/0000:00:05.0/virtio3/features", "")  # bound, no netdev (yet)
    assert [(f.address, f.interfaces) for f in collect_pci_network(m.roots)] == [
        ("0000:00:04.0", ["ens4"]), ("0000:00:05.0", [])]
