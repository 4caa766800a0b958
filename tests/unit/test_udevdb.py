"""udev's database: hwdb's model and vendor and the predictable names, read from ROOT/run/udev/data/nIFINDEX."""

from __future__ import annotations

import os

from guestcheck.collect.udevdb import parse_db, udev_properties
from guestcheck.doctor import build_report
from guestcheck.render.human import render
from tests.fakemachine import FakeMachine

# laid out as udevd writes /run/udev/data/nIFINDEX (systemd 252), with hwdb's names for QEMU's e1000 (8086:100e,
# subsystem 1af4:1100); tests/vm/test_doctor_vm.py reads the real one in a guest
E1000_DB = """I:4155837
E:ID_NET_NAME_MAC=enx525400123456
E:ID_OUI_FROM_DATABASE=Realtek (UpTech? also used by QEMU/KVM)
E:ID_NET_NAME_PATH=enp0s2
E:ID_BUS=pci
E:ID_VENDOR_ID=0x8086
E:ID_MODEL_ID=0x100e
E:ID_PCI_CLASS_FROM_DATABASE=Network controller
E:ID_PCI_SUBCLASS_FROM_DATABASE=Ethernet controller
E:ID_VENDOR_FROM_DATABASE=Intel Corporation
E:ID_MODEL_FROM_DATABASE=82540EM Gigabit Ethernet Controller (QEMU Virtual Machine)
E:ID_PATH=pci-0000:00:02.0
E:ID_PATH_TAG=pci-0000_00_02_0
E:ID_NET_DRIVER=e1000
E:ID_NET_NAME=enp0s2
G:systemd
Q:systemd
V:1
"""


def test_parse_keeps_the_wanted_properties_only():
    props = parse_db(E1000_DB)
    assert props == {
        "ID_NET_NAME_MAC": "enx525400123456", "ID_NET_NAME_PATH": "enp0s2", "ID_NET_NAME": "enp0s2",
        "ID_VENDOR_FROM_DATABASE": "Intel Corporation",
        "ID_MODEL_FROM_DATABASE": "82540EM Gigabit Ethernet Controller (QEMU Virtual Machine)",
    }
    assert parse_db("E:ID_NET_NAME\nE:=x\nS:ID_NET_NAME=no\nE:ID_NET_NAME_SLOT=\n") == {}


def test_facts_and_human_report_show_hwdbs_names(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="QEMU")
    m.add_nic("ens2", driver="e1000", pci_id="8086:100e", ifindex=2)
    m.write("run/udev/data/n2", E1000_DB)
    nic = next(n for n in m.collect().nics if n.name == "ens2")
    assert nic.vendor == "Intel Corporation"
    assert nic.model == "82540EM Gigabit Ethernet Controller (QEMU Virtual Machine)"
    assert nic.udev_names == {"ID_NET_NAME_MAC": "enx525400123456", "ID_NET_NAME_PATH": "enp0s2",
                              "ID_NET_NAME": "enp0s2"}
    text = render(build_report(m.collect()))
    assert "\n" + " " * 15 + "Intel Corporation 82540EM Gigabit Ethernet Controller (QEMU Virtual Machine)\n" in text


def test_no_udev_entry_is_none_and_odd_files_are_not_read(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("ens2", driver="e1000", pci_id="8086:100e", ifindex=2)
    nic = next(n for n in m.collect().nics if n.name == "ens2")
    assert (nic.model, nic.vendor, nic.udev_names) == (None, None, None)
    os.makedirs(tmp_path / "run/udev/data")
    os.mkfifo(tmp_path / "run/udev/data/n2")  # would block a plain open()
    assert udev_properties(m.roots, 2) is None
    assert udev_properties(m.roots, None) is None and udev_properties(m.roots, -1) is None


def test_control_characters_from_the_database_are_escaped(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("ens2", driver="e1000", pci_id="8086:100e", ifindex=2)
    m.write("run/udev/data/n2", "E:ID_MODEL_FROM_DATABASE=evil\x1b[2J model\n")
    text = render(build_report(m.collect()))
    assert "\x1b[2J" not in text and "evil" in text
