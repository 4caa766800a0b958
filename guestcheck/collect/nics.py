"""Every network interface from sysfs, completed by the ethtool ioctls, then classified."""

from __future__ import annotations

import os
from typing import Optional, Protocol

from guestcheck import nicdb
from guestcheck.collect.ethtool import DrvInfo, EthtoolError
from guestcheck.collect.fs import cat, cat_int, exists, link_name, listdir
from guestcheck.facts import Channels, Feature, Nic
from guestcheck.roots import Roots


class EthtoolSource(Protocol):
    """The real ioctls, or a capture replayed in tests."""

    def drvinfo(self, ifname: str) -> DrvInfo: ...
    def features(self, ifname: str) -> dict[str, Feature]: ...
    def channels(self, ifname: str) -> Channels: ...


def _hex_id(path: str) -> Optional[str]:
    """"0x8086" -> "8086"."""
    text = cat(path)
    if not text:
        return None
    return text.lower().removeprefix("0x")


def _pci_ids(pci_dir: str) -> tuple[Optional[str], Optional[str]]:
    vendor, device = _hex_id(os.path.join(pci_dir, "vendor")), _hex_id(os.path.join(pci_dir, "device"))
    sv = _hex_id(os.path.join(pci_dir, "subsystem_vendor"))
    sd = _hex_id(os.path.join(pci_dir, "subsystem_device"))
    pci_id = f"{vendor}:{device}" if vendor and device else None
    sub_id = f"{sv}:{sd}" if sv and sd else None
    return pci_id, sub_id


def _pci_function(devlink: str, bus: str) -> Optional[str]:
    """The PCI function behind the NIC: the device itself, or a virtio device's parent."""
    if bus == "pci":
        return devlink
    parent = os.path.join(devlink, "..")
    return parent if link_name(os.path.join(parent, "subsystem")) == "pci" else None


def _uevent(path: str) -> dict[str, str]:
    text = cat(path) or ""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _software_type(netdir: str, uevent: dict[str, str], driver: Optional[str]) -> Optional[str]:
    if exists(os.path.join(netdir, "bridge")):
        return "bridge"
    if exists(os.path.join(netdir, "bonding")):
        return "bond"
    if exists(os.path.join(netdir, "tun_flags")):
        return "tun"
    if uevent.get("DEVTYPE"):
        return uevent["DEVTYPE"]
    if driver in nicdb.SOFTWARE_DRIVERS:
        return nicdb.SOFTWARE_DRIVERS[driver]
    return None


def _count_queues(netdir: str) -> tuple[Optional[int], Optional[int]]:
    entries = listdir(os.path.join(netdir, "queues"))
    if not entries:
        return None, None
    return sum(e.startswith("rx-") for e in entries), sum(e.startswith("tx-") for e in entries)


def collect_nic(roots: Roots, name: str, ethtool: EthtoolSource, in_vm: bool) -> Optional[Nic]:
    """One interface, or None when it vanished while we looked."""
    netdir = os.path.join(roots.sys, "class/net", name)
    nic = Nic(name=name)
    nic.ifindex = cat_int(os.path.join(netdir, "ifindex"))
    if nic.ifindex is None and not os.path.isdir(netdir):
        return None
    nic.link_type = cat_int(os.path.join(netdir, "type"))
    nic.mac = cat(os.path.join(netdir, "address"))
    nic.mtu = cat_int(os.path.join(netdir, "mtu"))
    nic.operstate = cat(os.path.join(netdir, "operstate"))
    carrier = cat_int(os.path.join(netdir, "carrier"))
    nic.carrier = None if carrier is None else carrier == 1
    flags = cat_int(os.path.join(netdir, "flags"), 16)
    nic.admin_up = None if flags is None else bool(flags & 0x1)
    speed = cat_int(os.path.join(netdir, "speed"))
    nic.speed_mbps = speed if speed is not None and 0 < speed < 4_000_000 else None  # -1: unknown
    duplex = cat(os.path.join(netdir, "duplex"))
    nic.duplex = duplex if duplex in ("full", "half") else None
    nic.rx_queues, nic.tx_queues = _count_queues(netdir)

    devlink = os.path.join(netdir, "device")
    has_device = exists(devlink)
    has_physfn = False
    if has_device:
        nic.driver_sysfs = link_name(os.path.join(devlink, "driver"))
        nic.bus = link_name(os.path.join(devlink, "subsystem")) or "none"
        has_physfn = exists(os.path.join(devlink, "physfn"))
        pci_dir = _pci_function(devlink, nic.bus)
        if pci_dir:
            nic.pci_id, nic.pci_subsystem_id = _pci_ids(pci_dir)
        if nic.driver_sysfs is None:
            nic.unknown["driver_sysfs"] = "no driver bound to the device"
    uevent = _uevent(os.path.join(netdir, "uevent"))

    try:
        info = ethtool.drvinfo(name)
        nic.driver_ethtool = info.driver or None
        nic.driver_version = info.version or None
        nic.firmware = info.firmware or None
        nic.bus_info = info.bus_info or None
    except EthtoolError as e:
        nic.unknown["drvinfo"] = e.reason
        if e.reason == "no-device" and not os.path.isdir(netdir):
            return None
    try:
        nic.features = ethtool.features(name)
    except EthtoolError as e:
        nic.unknown["features"] = e.reason
    try:
        nic.channels = ethtool.channels(name)
    except EthtoolError as e:
        nic.unknown["channels"] = e.reason

    nic.driver = nic.driver_sysfs or nic.driver_ethtool
    nic.software_type = None if has_device else _software_type(netdir, uevent, nic.driver_ethtool)
    nic.kind, nic.kind_reason = nicdb.classify(
        name=name,
        driver=nic.driver,
        bus=nic.bus,
        pci_id=nic.pci_id,
        pci_subsystem_id=nic.pci_subsystem_id,
        has_device=has_device,
        has_physfn=has_physfn,
        software_type=nic.software_type,
        link_type=nic.link_type,
        in_vm=in_vm,
    )
    if nic.link_type == 772:
        nic.software_type = "loopback"
    return nic


def collect_nics(roots: Roots, ethtool: EthtoolSource, in_vm: bool) -> list[Nic]:
    nics = []
    for name in listdir(os.path.join(roots.sys, "class/net")):
        nic = collect_nic(roots, name, ethtool, in_vm)
        if nic is not None:
            nics.append(nic)
    return nics
