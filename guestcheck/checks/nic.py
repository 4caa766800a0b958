"""Emulated NICs cost up to 5x throughput against virtio-net: the single biggest fix."""

from __future__ import annotations

from typing import Optional

from guestcheck import nicdb
from guestcheck.checks import CARRYING_TRAFFIC, PRESENT, FindingDoc, carries_traffic, present_nics, traffic_nics
from guestcheck.facts import Facts, Nic
from guestcheck.findings import Finding, Severity
from guestcheck.judge.virt import host_tools
from guestcheck.text import shell_word

UNKNOWN_HINT = ("Report the driver so it can be added to the tables: attach the output of "
                "`guestcheck facts --json > guestcheck-facts.json`.")
NONE_HINT = ("No interface is down, and none has a link: check that the VM has a NIC and that it is connected on "
             "the host's side, then the interface's configuration.")

FINDINGS = {
    "NIC-EMULATED": FindingDoc(
        "The NIC is emulated hardware",
        "critical",
        "The hypervisor emulates an old physical card (Intel e1000/e1000e/igb, Realtek 8139, NE2000, PCnet, "
        "DEC tulip) register by register: every packet costs VM exits, there is one queue and few offloads. "
        "Paravirtual virtio-net moves packets through shared rings and is up to 5x faster.",
        nicdb.EMULATED_FIX,
        judged_on=PRESENT,
        fix_on="host",
    ),
    "NIC-PARAVIRTUAL": FindingDoc(
        "The NIC is paravirtual",
        "ok",
        "virtio-net, vmxnet3, hv_netvsc, Xen netfront, ENA, gVNIC or MANA: the fast kind of virtual NIC.",
        "Nothing to fix.",
        judged_on=PRESENT,
        fix_on="",
    ),
    "NIC-SRIOV-VF": FindingDoc(
        "The NIC is an SR-IOV virtual function",
        "ok",
        "A slice of a physical NIC passed to the guest: near line rate, the hypervisor is not in the data path.",
        "Nothing to fix.",
        judged_on=PRESENT,
        fix_on="",
    ),
    "NIC-PHYSICAL": FindingDoc(
        "The NIC is physical hardware",
        "ok",
        "A physical NIC (bare metal or PCI passthrough).",
        "Nothing to fix.",
        judged_on=PRESENT,
        fix_on="",
    ),
    "NIC-UNKNOWN": FindingDoc(
        "The NIC's kind is unknown",
        "info",
        "guestcheck's driver tables do not know this driver, or no driver is bound.",
        UNKNOWN_HINT,
        judged_on=PRESENT,
        fix_on="",  # nothing in the guest changes it: the hint says how to report the driver
    ),
    "NIC-NONE": FindingDoc(
        "No interface carries traffic",
        "warning",
        "Only loopback, or only interfaces that are down: this machine has no working network path.",
        "ip link set IFACE up  (for each interface that should carry traffic; then check its configuration)",
        judged_on=CARRYING_TRAFFIC,
    ),
}

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


def classify_nic(nic: Nic, in_vm: bool) -> None:
    """Fill in `software_type`, `kind` and `kind_reason` from the raw answers the collector recorded."""
    nic.software_type = software_type(nic)
    has_device = nic.has_device
    if has_device is None:  # older facts: only interfaces without a device were given a software type
        has_device = nic.software_type is None
    has_physfn = nic.has_physfn
    if has_physfn is None:  # older facts did not record it; their verdict named it when it decided
        has_physfn = "physfn" in nic.kind_reason
    nic.kind, nic.kind_reason = nicdb.classify(
        name=nic.name, driver=nic.driver, bus=nic.bus, pci_id=nic.pci_id, pci_subsystem_id=nic.pci_subsystem_id,
        has_device=has_device, has_physfn=has_physfn, software_type=nic.software_type, link_type=nic.link_type,
        in_vm=in_vm)


def classify_nics(facts: Facts) -> None:
    """The judging step for NICs, run before the checks (and before `facts` prints): kinds by today's tables."""
    in_vm = facts.virt.hypervisor is not None
    for nic in facts.nics:
        classify_nic(nic, in_vm)


_OK_IDS = {"paravirtual": "NIC-PARAVIRTUAL", "sriov-vf": "NIC-SRIOV-VF", "physical": "NIC-PHYSICAL"}


def _evidence(nic: Nic) -> dict:
    return {
        "driver_sysfs": nic.driver_sysfs,
        "driver_ethtool": nic.driver_ethtool,
        "bus": nic.bus,
        "pci_id": nic.pci_id,
        "pci_subsystem_id": nic.pci_subsystem_id,
        "reason": nic.kind_reason,
        "operstate": nic.operstate,
    }


def run(facts: Facts) -> list[Finding]:
    out = []
    # the NIC model is the VM's configuration: judged on every NIC present, even one whose link is still coming up
    hardware = present_nics(facts, {"paravirtual", "sriov-vf", "emulated", "physical", "unknown"})
    for nic in hardware:
        if nic.kind == "emulated":
            model = nicdb.EMULATED.get(nic.driver or "", nic.driver)
            link = "" if carries_traffic(nic) else f" (link {nic.operstate or 'state unknown'})"
            out.append(Finding("NIC-EMULATED", Severity.CRITICAL, nic.name,
                               f"emulated {model} NIC: up to 5x slower than paravirtual virtio-net{link}",
                               _evidence(nic), nicdb.emulated_fix(host_tools(facts.virt))))
        elif nic.kind in _OK_IDS:
            out.append(Finding(_OK_IDS[nic.kind], Severity.OK, nic.name,
                               f"{nic.kind} NIC, driver {nic.driver}", _evidence(nic), ""))
        else:
            out.append(Finding("NIC-UNKNOWN", Severity.INFO, nic.name, nic.kind_reason, _evidence(nic),
                               hint=UNKNOWN_HINT))
    if not traffic_nics(facts) and facts.complete:
        down = [n.name for n in present_nics(facts) if n.admin_up is False]
        fix = "\n".join(f"ip link set {shell_word(name)} up" for name in down)
        out.append(Finding("NIC-NONE", Severity.WARNING, "network", "no interface is up besides loopback",
                           {"interfaces": [n.name for n in facts.nics], "down": down}, fix,
                           hint="" if fix else NONE_HINT))
    return out
