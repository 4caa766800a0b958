"""Every network interface from sysfs, completed by the ethtool ioctls.

Observations only: the raw answers (driver names, bus, PCI ids, physfn, type markers, stacking links) go into
the facts, and the judging step (guestcheck.judge.nic.nic_verdict) decides each NIC's kind from them, so a
saved facts file is judged by the tables of the guestcheck that reads it.
"""

from __future__ import annotations

import os
from typing import Optional, Protocol

from guestcheck.collect.area import Run
from guestcheck.collect.ethtool import DrvInfo, EthtoolError, ethtool_source
from guestcheck.collect.fs import cat, cat_int, exists, link_name, listdir
from guestcheck.collect.udevdb import MODEL, NET_NAME_KEYS, VENDOR, udev_properties
from guestcheck.facts import Channels, Feature, Nic, Rings
from guestcheck.roots import Roots
from guestcheck.uevent import parse_uevent


class EthtoolSource(Protocol):
    """The real ioctls, or a capture replayed in tests."""

    def drvinfo(self, ifname: str) -> DrvInfo: ...
    def features(self, ifname: str) -> dict[str, Feature]: ...
    def channels(self, ifname: str) -> Channels: ...
    def rings(self, ifname: str) -> Rings: ...
    def stats(self, ifname: str) -> dict[str, int]: ...


def _hex_id(path: str) -> Optional[str]:
    """"0x8086" -> "8086"."""
    text = cat(path)
    if not text:
        return None
    return text.lower().removeprefix("0x")


def pci_ids(pci_dir: str) -> tuple[Optional[str], Optional[str]]:
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


# files or directories in class/net/IFACE that only one kind of software interface has
TYPE_MARKERS = ("bridge", "bonding", "tun_flags")


def _markers(netdir: str) -> list[str]:
    return [m for m in TYPE_MARKERS if exists(os.path.join(netdir, m))]


def _stacking(netdir: str) -> tuple[list[str], Optional[str]]:
    """The devices this one sits on (lower_* links: a macvlan's or VLAN's parent, a bridge's or bond's ports)
    and the bridge or bond it is a port of (the master link)."""
    lowers = sorted(e[len("lower_"):] for e in listdir(netdir) if e.startswith("lower_") and len(e) > 6)
    return lowers, link_name(os.path.join(netdir, "master"))


def _count_queues(netdir: str) -> tuple[Optional[int], Optional[int]]:
    entries = listdir(os.path.join(netdir, "queues"))
    if not entries:
        return None, None
    return sum(e.startswith("rx-") for e in entries), sum(e.startswith("tx-") for e in entries)


def collect_nic(roots: Roots, name: str, ethtool: EthtoolSource, driver_stats: bool = True) -> Optional[Nic]:
    """One interface, or None when it vanished while we looked. `driver_stats=False` leaves the driver's
    counters to the sample's readings (collect.nic_counters), which fill them in."""
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
    has_device = nic.has_device = exists(devlink)
    nic.has_physfn = False
    if has_device:
        nic.driver_sysfs = link_name(os.path.join(devlink, "driver"))
        nic.bus = link_name(os.path.join(devlink, "subsystem")) or "none"
        nic.has_physfn = exists(os.path.join(devlink, "physfn"))
        pci_dir = _pci_function(devlink, nic.bus)
        if pci_dir:
            nic.pci_id, nic.pci_subsystem_id = pci_ids(pci_dir)
        if nic.driver_sysfs is None:
            nic.unknown["driver_sysfs"] = "no driver bound to the device"
    nic.devtype = parse_uevent(cat(os.path.join(netdir, "uevent"))).get("DEVTYPE", "")
    nic.markers = _markers(netdir)
    nic.lowers, nic.master = _stacking(netdir)

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
    try:
        nic.rings = ethtool.rings(name)
    except EthtoolError as e:
        nic.unknown["rings"] = e.reason
    if driver_stats:
        try:
            nic.driver_stats = ethtool.stats(name)
        except EthtoolError as e:
            nic.unknown["driver_stats"] = e.reason

    udev = udev_properties(roots, nic.ifindex)
    if udev is not None:
        nic.model, nic.vendor = udev.get(MODEL), udev.get(VENDOR)
        nic.udev_names = {k: v for k, v in udev.items() if k in NET_NAME_KEYS}

    nic.driver = nic.driver_sysfs or nic.driver_ethtool
    return nic


def collect_nics(roots: Roots, ethtool: EthtoolSource, driver_stats: bool = True) -> list[Nic]:
    nics = []
    for name in listdir(os.path.join(roots.sys, "class/net")):
        nic = collect_nic(roots, name, ethtool, driver_stats)
        if nic is not None:
            nics.append(nic)
    return nics


AREA = "nics"


def collect(run: Run) -> list[Nic]:
    if not os.path.isdir(os.path.join(run.roots.sys, "class/net")):
        run.incomplete(f"{run.roots.sys}/class/net is not readable: is sysfs mounted?")
    if run.ethtool is not None:
        return collect_nics(run.roots, run.ethtool, driver_stats=run.driver_stats)
    with ethtool_source(run.roots) as source:
        # the driver's counters are read by the sample (both ends of the window), not twice
        return collect_nics(run.roots, source, driver_stats=run.driver_stats)
