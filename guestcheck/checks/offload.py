"""Offloads let the NIC (or the host) segment and checksum; without them the guest CPU does it per packet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from guestcheck.checks import CARRYING_TRAFFIC, PRESENT, FindingDoc, carries_traffic, present_nics
from guestcheck.facts import Facts, Feature, Nic
from guestcheck.findings import Finding, Severity
from guestcheck.text import shell_word


@dataclass(frozen=True)
class Offload:
    label: str
    finding_id: str
    features: tuple[str, ...]  # the kernel's names; the group is on when any of them is
    ethtool_name: str  # the name `ethtool -K` takes


OFFLOADS = [
    Offload("TSO", "OFFLOAD-TSO-OFF", ("tx-tcp-segmentation", "tx-tcp6-segmentation"), "tso"),
    Offload("GSO", "OFFLOAD-GSO-OFF", ("tx-generic-segmentation",), "gso"),
    Offload("GRO", "OFFLOAD-GRO-OFF", ("rx-gro",), "gro"),
    Offload("RX checksum", "OFFLOAD-RXCSUM-OFF", ("rx-checksum",), "rx"),
    Offload("TX checksum", "OFFLOAD-TXCSUM-OFF",
            ("tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6"), "tx"),
    Offload("scatter-gather", "OFFLOAD-SG-OFF", ("tx-scatter-gather",), "sg"),
]

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


# The short names `ethtool -K` takes for the kernel's feature names this check looks at.
SHORT_NAME = {
    "tx-scatter-gather": "sg",
    "tx-checksum-ipv4": "tx", "tx-checksum-ip-generic": "tx", "tx-checksum-ipv6": "tx",
    "tx-tcp-segmentation": "tso", "tx-tcp6-segmentation": "tso",
    "tx-generic-segmentation": "gso",
    "rx-gro": "gro",
    "rx-checksum": "rx",
}

# What the kernel drops a feature for (netdev_fix_features in net/core/dev.c): each entry is a set of
# alternatives, one of which must be active. TSO and GSO need scatter-gather; TSO needs TX checksumming
# (IPv4 TSO the generic or the IPv4 checksum, IPv6 TSO the generic or the IPv6 one).
DEPENDS = {
    "tx-tcp-segmentation": (("tx-scatter-gather",), ("tx-checksum-ip-generic", "tx-checksum-ipv4")),
    "tx-tcp6-segmentation": (("tx-scatter-gather",), ("tx-checksum-ip-generic", "tx-checksum-ipv6")),
    "tx-generic-segmentation": (("tx-scatter-gather",),),
}


# Devices whose features are bounded by their lower device's (the kernel intersects them): a macvlan moved into
# a container keeps its lower outside, where this namespace cannot see it.
STACKED = ("macvlan", "macvtap", "ipvlan", "ipvtap", "vlan")


@dataclass
class Plan:
    """How to make a feature active from inside the guest: commands in the order that works, and why."""

    commands: list[str] = field(default_factory=list)
    features: list[tuple[str, str]] = field(default_factory=list)  # (interface, kernel feature) per command
    reasons: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # causes the guest cannot change ([fixed] somewhere)
    unexplained: bool = False  # requested on, held off, and no cause guestcheck can see

    def add(self, command: str) -> None:
        if command not in self.commands:
            self.commands.append(command)


def _on(nic: Nic, name: str) -> bool:
    f = (nic.features or {}).get(name)
    return f is not None and f.on


def _enable(facts: Facts, nic: Nic, name: str, plan: Plan, seen: set) -> None:
    """Add to `plan` what makes kernel feature `name` active on `nic`: its causes first (the feature it depends
    on, the lower devices it is held off by), then `ethtool -K` for the feature if it is not requested already."""
    if (nic.name, name) in seen:
        return
    seen.add((nic.name, name))
    features = nic.features or {}
    f = features.get(name)
    if f is None or f.on:
        return
    if f.fixed:
        plan.blocked.append(f"{name} is off [fixed] on {nic.name}")
        return
    explained = False
    for alternatives in DEPENDS.get(name, ()):
        present = [a for a in alternatives if a in features]
        if not present or any(features[a].on for a in present):
            continue
        choice = next((a for a in present if not features[a].fixed), None)
        if choice is None:
            plan.blocked.append(f"{name} needs {' or '.join(present)}, off [fixed] on {nic.name}")
            return
        plan.reasons.append(f"{nic.name}: {name} needs {choice} ({SHORT_NAME.get(choice, choice)}), which is off")
        _enable(facts, nic, choice, plan, seen)
        explained = True
    for lower_name in nic.lowers or ():
        lower = facts.nic(lower_name)
        if lower is None or lower.features is None or name not in lower.features or _on(lower, name):
            continue
        plan.reasons.append(f"{nic.name}: {name} is held off by its lower device {lower.name}, where it is off")
        _enable(facts, lower, name, plan, seen)
        explained = True
    if f.requested:
        if not explained:
            plan.unexplained = True
            if nic.software_type in STACKED and not any(facts.nic(n) for n in nic.lowers or ()):
                plan.reasons.append(f"{nic.name}: {name} is requested on but held off by its lower device, which "
                                    "is not in this network namespace (look at it where it is: ethtool -k)")
            else:
                plan.reasons.append(f"{nic.name}: {name} is requested on but the kernel or the driver holds it "
                                    "off for a reason guestcheck cannot see")
        return  # the kernel turns it on by itself once its causes are fixed
    plan.add(f"ethtool -K {shell_word(nic.name)} {SHORT_NAME.get(name, name)} on")
    if (nic.name, name) not in plan.features:
        plan.features.append((nic.name, name))


def plan_group(facts: Facts, nic: Nic, offload: Offload) -> Plan:
    """The plan that turns an offload group on: each member the guest can change, causes first."""
    plan = Plan()
    seen: set = set()
    changeable = 0
    for name in offload.features:
        f = (nic.features or {}).get(name)
        if f is None or f.fixed:
            continue
        changeable += 1
        member = Plan()
        _enable(facts, nic, name, member, seen)
        if member.blocked and not member.commands:
            plan.blocked.extend(member.blocked)
            changeable -= 1
            continue
        for c in member.commands:
            plan.add(c)
        plan.features.extend(f for f in member.features if f not in plan.features)
        plan.reasons.extend(r for r in member.reasons if r not in plan.reasons)
        plan.blocked.extend(member.blocked)
        plan.unexplained = plan.unexplained or member.unexplained
    if not changeable:
        plan.blocked = plan.blocked or ["every member is off [fixed]"]
    return plan


def _state(f: Feature) -> str:
    text = "on" if f.on else "off"
    if f.fixed:
        text += " [fixed]"
    elif f.requested is not None and f.requested != f.on:
        text += f" [requested {'on' if f.requested else 'off'}]"
    return text


def _group(features: dict[str, Feature], offload: Offload) -> Optional[Feature]:
    present = [features[n] for n in offload.features if n in features]
    if not present:
        return None
    return Feature(on=any(f.on for f in present), fixed=all(f.fixed for f in present))


def gro_off_by_design(facts: Facts, nic: Nic, seen: Optional[set] = None) -> bool:
    """veth ships with GRO off by design (it only helps when forwarding with XDP), and a device stacked on one
    (a macvlan, a VLAN) has GRO held off by it: neither is a finding, and `ethtool -K` on either would not
    give the stacked device GRO without changing the veth's design."""
    if nic.software_type == "veth":
        return True
    seen = seen if seen is not None else set()
    seen.add(nic.name)
    for lower_name in nic.lowers or ():
        lower = facts.nic(lower_name)
        if lower is not None and lower.name not in seen and not _on(lower, "rx-gro") and \
                gro_off_by_design(facts, lower, seen):
            return True
    return False


def _reason_text(nic: Nic, reason: str) -> str:
    """A plan's reason for the summary: about this device without its name, about another one with it."""
    device, _, text = reason.partition(": ")
    return text if device == nic.name else f"on {device}, {text}"


def check_nic(nic: Nic, facts: Optional[Facts] = None) -> list[Finding]:
    facts = facts if facts is not None else Facts(nics=[nic])
    if nic.features is None:
        return [Finding("OFFLOAD-UNKNOWN", Severity.INFO, nic.name,
                        f"offloads unknown ({nic.unknown.get('features', 'not read')})",
                        {"how": "ethtool -k shows them by hand"},
                        hint=f"look by hand: ethtool -k {shell_word(nic.name)}")]
    out = []
    fixed_off = []
    for offload in OFFLOADS:
        if offload.ethtool_name == "gro" and gro_off_by_design(facts, nic):
            continue  # veth ships with GRO off by design, and holds it off for what is stacked on it
        state = _group(nic.features, offload)
        if state is None or state.on:
            continue
        evidence: dict = {n: _state(nic.features[n]) for n in offload.features if n in nic.features}
        plan = plan_group(facts, nic, offload) if not state.fixed else Plan(blocked=["off [fixed]"])
        if not plan.commands and plan.blocked:
            if not state.fixed:
                evidence["cannot_change"] = plan.blocked
            fixed_off.append((offload, evidence))
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
    if fixed_off and nic.driver == "virtio_net":
        evidence = {}
        held: list[str] = []
        for _, ev in fixed_off:
            held += [h for h in ev.get("cannot_change", []) if h not in held]
            evidence.update({k: v for k, v in ev.items() if k != "cannot_change"})
        if held:
            evidence["cannot_change"] = held
        labels = ", ".join(o.label for o, _ in fixed_off)
        out.append(Finding("OFFLOAD-BACKEND-NONE", Severity.WARNING, nic.name,
                           f"{labels} off and fixed: the host's backend negotiated no offloads "
                           "(user-mode networking, or a tap without vnet headers)", evidence, BACKEND_FIX, "host"))
    return out


def run(facts: Facts) -> list[Finding]:
    out = []
    for nic in present_nics(facts):
        found = check_nic(nic, facts)
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
        state = _group(features, offload)
        if state is not None:
            (on if state.on else off).append(offload.label)
    summary = f"offloads on: {', '.join(on) or 'none'}" + (f"; off, not changeable here: {', '.join(off)}"
                                                           if off else "")
    return Finding("OFFLOAD-ON", Severity.OK, nic.name, summary, {"on": on, "off": off}, "")
