"""What kind each NIC is (paravirtual, SR-IOV VF, emulated, physical, software), from the raw sysfs answers.

The collector records what sysfs said (a device behind it, physfn, DEVTYPE, type markers, the driver); the
kind is decided here by today's tables (guestcheck/nicdb.py), so a saved facts file is judged the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from guestcheck import nicdb
from guestcheck.facts import Nic


@dataclass(frozen=True)
class NicVerdict:
    """What kind of NIC an interface is, and why the judge says so."""

    kind: str  # paravirtual | sriov-vf | emulated | software | physical | unknown
    reason: str  # why (facts/1: the NIC's kind_reason)
    software_type: Optional[str]  # veth, bridge, bond, vlan, tun, macvlan, loopback, ... for software NICs


def software_type(nic: Nic) -> Optional[str]:
    """veth, bridge, bond, vlan, tun, macvlan, ... from the sysfs type markers, DEVTYPE and the driver."""
    if nic.link_type == 772:
        return "loopback"
    if nic.has_device is None:  # a facts file from before the raw markers were recorded
        return nic.software_type
    if nic.has_device:
        return None
    markers = set(nic.markers or ())
    for marker, kind in (("bridge", "bridge"), ("bonding", "bond"), ("tun_flags", "tun")):
        if marker in markers:
            return kind
    if nic.devtype:
        return nic.devtype
    return nicdb.SOFTWARE_DRIVERS.get(nic.driver_ethtool or "")


def nic_verdict(nic: Nic, in_vm: bool) -> NicVerdict:
    """The NIC's kind, why, and its software type, from the raw answers the collector recorded."""
    soft = software_type(nic)
    has_device = nic.has_device
    if has_device is None:  # older facts: only interfaces without a device were given a software type
        has_device = soft is None
    has_physfn = nic.has_physfn
    if has_physfn is None:  # older facts did not record it; their verdict named it when it decided
        has_physfn = "physfn" in nic.kind_reason
    kind, reason = nicdb.classify(
        name=nic.name, driver=nic.driver, bus=nic.bus, pci_id=nic.pci_id, pci_subsystem_id=nic.pci_subsystem_id,
        has_device=has_device, has_physfn=has_physfn, software_type=soft, link_type=nic.link_type, in_vm=in_vm)
    return NicVerdict(kind, reason, soft)
