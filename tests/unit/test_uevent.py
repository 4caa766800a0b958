"""guestcheck/uevent.py: the one parser of uevent properties, from sysfs and from udev's database."""

from __future__ import annotations

from guestcheck.uevent import parse_uevent, udev_db_properties


def test_a_sysfs_uevent_file():
    assert parse_uevent("DEVTYPE=vlan\nINTERFACE=eth0.5\nnoise\nIFINDEX=7\nIFINDEX=8\n") == {
        "DEVTYPE": "vlan", "INTERFACE": "eth0.5", "IFINDEX": "8"}
    assert parse_uevent(None) == {}


def test_udev_database_properties_in_order():
    text = "I:123\nS:by-path/x\nE:ID_NET_NAME_PATH=enp0s3\nE:ID_MODEL_FROM_DATABASE=Virtio a=b\nE:NOEQUALS\nG:systemd\n"
    assert list(udev_db_properties(text)) == [("ID_NET_NAME_PATH", "enp0s3"), ("ID_MODEL_FROM_DATABASE", "Virtio a=b")]
    assert list(udev_db_properties(None)) == []
