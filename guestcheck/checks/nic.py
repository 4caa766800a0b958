"""Emulated NICs cost up to 5x throughput against virtio-net: the single biggest fix."""

from __future__ import annotations

from guestcheck import nicdb
from guestcheck.checks import CARRYING_TRAFFIC, PRESENT, FindingDoc, carries_traffic, present_nics, traffic_nics
from guestcheck.facts import Facts, Nic
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.judge.nic import NicVerdict
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
FINDING_SETTINGS = [("NIC-*", ("link",))]  # what another agent may own of what they are about


_OK_IDS = {"paravirtual": "NIC-PARAVIRTUAL", "sriov-vf": "NIC-SRIOV-VF", "physical": "NIC-PHYSICAL"}


def _evidence(nic: Nic, verdict: NicVerdict) -> dict:
    return {
        "driver_sysfs": nic.driver_sysfs,
        "driver_ethtool": nic.driver_ethtool,
        "bus": nic.bus,
        "pci_id": nic.pci_id,
        "pci_subsystem_id": nic.pci_subsystem_id,
        "reason": verdict.reason,
        "operstate": nic.operstate,
    }


def run(facts: Facts, judged: Judged) -> list[Finding]:
    out = []
    # the NIC model is the VM's configuration: judged on every NIC present, even one whose link is still coming up
    hardware = present_nics(facts, judged, {"paravirtual", "sriov-vf", "emulated", "physical", "unknown"})
    for nic in hardware:
        verdict = judged.nic(nic)
        if verdict.kind == "emulated":
            model = nicdb.EMULATED.get(nic.driver or "", nic.driver)
            link = "" if carries_traffic(nic) else f" (link {nic.operstate or 'state unknown'})"
            out.append(Finding("NIC-EMULATED", Severity.CRITICAL, nic.name,
                               f"emulated {model} NIC: up to 5x slower than paravirtual virtio-net{link}",
                               _evidence(nic, verdict), nicdb.emulated_fix(host_tools(judged.virt))))
        elif verdict.kind in _OK_IDS:
            out.append(Finding(_OK_IDS[verdict.kind], Severity.OK, nic.name,
                               f"{verdict.kind} NIC, driver {nic.driver}", _evidence(nic, verdict), ""))
        else:
            out.append(Finding("NIC-UNKNOWN", Severity.INFO, nic.name, verdict.reason, _evidence(nic, verdict),
                               hint=UNKNOWN_HINT))
    if not traffic_nics(facts, judged) and facts.complete:
        down = [n.name for n in present_nics(facts, judged) if n.admin_up is False]
        fix = "\n".join(f"ip link set {shell_word(name)} up" for name in down)
        out.append(Finding("NIC-NONE", Severity.WARNING, "network", "no interface is up besides loopback",
                           {"interfaces": [n.name for n in facts.nics], "down": down}, fix,
                           hint="" if fix else NONE_HINT))
    return out
