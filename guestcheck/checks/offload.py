"""Offloads let the NIC (or the host) segment and checksum; without them the guest CPU does it per packet."""

from __future__ import annotations

from typing import Optional, Tuple

from guestcheck.checks import CARRYING_TRAFFIC, PRESENT, FindingDoc, carries_traffic, present_nics
from guestcheck.facts import Facts, Feature, Nic
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.judge.offload import (
    OFFLOADS,
    OffGroup,
    backend_none,
    backend_summary,
    group_state,
    off_groups,
    unknown_summary,
)
from guestcheck.text import shell_word

# A host-side fix: one labelled line per platform (the finding's fix_on is "host").
BACKEND_FIX = "\n".join([
    "on the host: give the guest a NIC backend with vnet headers so virtio-net can negotiate checksum and "
    "segmentation offloads (QEMU user-mode networking, -nic user / SLIRP, never offers them), then reboot the "
    "guest: offloads are negotiated when the device starts",
    "QEMU: -netdev tap,id=n0,vhost=on,vnet_hdr=on -device virtio-net-pci,netdev=n0",
    "libvirt: <interface type='bridge'> or type='network' with <model type='virtio'/> (vhost-net is the default; "
    "load vhost_net on the host) and no <host csum='off' tso4='off'/> or <guest .../> overrides in <driver>",
])

FINDINGS = {
    o.finding_id: FindingDoc(
        f"{o.label} is off",
        "warning",
        f"With {o.label} off the guest's CPU does per-packet work the NIC or the host could do in bulk; "
        "throughput drops and softirq load rises.",
        f"ethtool -K IFACE {o.ethtool_name} on, after what it depends on: TSO and GSO need scatter-gather (sg), "
        "TSO needs TX checksumming (tx); a feature shown as \"off [requested on]\" is held off by one of those or "
        "by the lower device of a stacked interface (macvlan, VLAN, bridge port, bond slave), which is fixed "
        "first. The finding's fix lists the commands in that order. Persist them with an ethtool hook in "
        "/etc/network/interfaces, a udev rule running ethtool, or NetworkManager's ethtool settings.",
        judged_on=CARRYING_TRAFFIC,
    )
    for o in OFFLOADS
}
FINDINGS["OFFLOAD-ON"] = FindingDoc(
    "The offloads guestcheck checks are on, or cannot be changed from the guest",
    "ok",
    "No offload finding for this interface: TSO, GSO, GRO, the checksums and scatter-gather are on, or off "
    "where that is by design (GRO on a veth) or [fixed] on a NIC whose backend is not judged here. Said so that "
    "`doctor -v` shows the area was checked.",
    "Nothing to fix.",
        fix_on="",
    judged_on=CARRYING_TRAFFIC,
)
FINDINGS["OFFLOAD-BACKEND-NONE"] = FindingDoc(
    "The host's NIC backend negotiated no offloads",
    "warning",
    "On virtio-net, checksum, TSO and scatter-gather show as off and [fixed] when the device on the host side "
    "offered none of them: typically QEMU user-mode networking (SLIRP) or a tap without vnet headers. "
    "Nothing can turn them on from inside the guest.",
    BACKEND_FIX,
    judged_on=PRESENT,
    fix_on="host",
)
FINDINGS["OFFLOAD-UNKNOWN"] = FindingDoc(
    "Offloads could not be read",
    "info",
    "ETHTOOL_GFEATURES did not answer for this interface.",
    "ethtool -k IFACE  (to look by hand)",
    judged_on=CARRYING_TRAFFIC,
    fix_on="",  # looking is not fixing: the command to look goes in the hint
)
FINDING_SETTINGS = [("OFFLOAD-*", ("offloads",))]  # what another agent may own of what they are about


def _state(f: Feature) -> str:
    text = "on" if f.on else "off"
    if f.fixed:
        text += " [fixed]"
    elif f.requested is not None and f.requested != f.on:
        text += f" [requested {'on' if f.requested else 'off'}]"
    return text


def _reason_text(nic: Nic, reason: str) -> str:
    """A plan's reason for the summary: about this device without its name, about another one with it."""
    device, _, text = reason.partition(": ")
    return text if device == nic.name else f"on {device}, {text}"


def check_nic(nic: Nic, facts: Optional[Facts] = None, groups: Optional[Tuple[OffGroup, ...]] = None) -> list[Finding]:
    """The offload findings of one NIC, from the judge's offload plan (`groups`, else planned here)."""
    facts = facts if facts is not None else Facts(nics=[nic])
    if nic.features is None:
        return [Finding("OFFLOAD-UNKNOWN", Severity.INFO, nic.name, unknown_summary(nic),
                        {"how": "ethtool -k shows them by hand"},
                        hint=f"look by hand: ethtool -k {shell_word(nic.name)}")]
    groups = off_groups(facts, nic) if groups is None else groups
    out = []
    fixed_off = []
    for group in groups:
        offload, state, plan = group.offload, group.state, group.plan
        evidence: dict = {n: _state(nic.features[n]) for n in offload.features if n in nic.features}
        if not group.changeable:
            if not state.fixed:
                evidence["cannot_change"] = plan.blocked
            fixed_off.append(evidence)
            continue
        if plan.reasons:
            evidence["reasons"] = plan.reasons
        if plan.blocked:
            evidence["cannot_change"] = plan.blocked
        if plan.reasons:
            summary = f"{offload.label} is off: " + "; ".join(_reason_text(nic, r) for r in plan.reasons)
        else:
            summary = f"{offload.label} is off but can be turned on"
        out.append(Finding(offload.finding_id, Severity.WARNING, nic.name, summary, evidence,
                           "\n".join(plan.commands), "guest" if plan.commands else ""))
    backend = backend_none(nic, groups)
    if backend:
        evidence = {}
        held: list[str] = []
        for ev in fixed_off:
            held += [h for h in ev.get("cannot_change", []) if h not in held]
            evidence.update({k: v for k, v in ev.items() if k != "cannot_change"})
        if held:
            evidence["cannot_change"] = held
        out.append(Finding("OFFLOAD-BACKEND-NONE", Severity.WARNING, nic.name, backend_summary(backend), evidence,
                           BACKEND_FIX, "host"))
    return out


def run(facts: Facts, judged: Judged) -> list[Finding]:
    out = []
    for nic in present_nics(facts, judged):
        found = check_nic(nic, facts, judged.offload_groups(nic))
        # what the host's backend negotiated is the VM's configuration; the rest only costs while packets flow
        out.extend(f for f in found if carries_traffic(nic) or FINDINGS[f.id].judged_on == PRESENT)
        if not found and carries_traffic(nic):
            out.append(_offloads_ok(nic))
    return out


def _offloads_ok(nic: Nic) -> Finding:
    """The OK line `doctor -v` shows: which offload groups are on, and which are off but not flagged."""
    features = nic.features or {}
    on, off = [], []
    for offload in OFFLOADS:
        state = group_state(features, offload)
        if state is not None:
            (on if state.on else off).append(offload.label)
    summary = f"offloads on: {', '.join(on) or 'none'}" + (f"; off, not changeable here: {', '.join(off)}"
                                                           if off else "")
    return Finding("OFFLOAD-ON", Severity.OK, nic.name, summary, {"on": on, "off": off}, "")
