"""The offload plan: which offload groups are off on a NIC, and what turns each on from inside the guest.

doctor's findings (checks/offload.py) and `guestcheck tune offloads` both read it, so they agree on what is
off, what the guest can change, and the order of the commands (causes first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from guestcheck.facts import Facts, Feature, Nic
from guestcheck.judge.nic import software_type
from guestcheck.text import shell_word


@dataclass(frozen=True)
class Offload:
    """One offload group as the checks and the tuner see it: its features and ethtool name."""

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
            if software_type(nic) in STACKED and not any(facts.nic(n) for n in nic.lowers or ()):
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


def group_state(features: dict[str, Feature], offload: Offload) -> Optional[Feature]:
    present = [features[n] for n in offload.features if n in features]
    if not present:
        return None
    return Feature(on=any(f.on for f in present), fixed=all(f.fixed for f in present))


def gro_off_by_design(facts: Facts, nic: Nic, seen: Optional[set] = None) -> bool:
    """veth ships with GRO off by design (it only helps when forwarding with XDP), and a device stacked on one
    (a macvlan, a VLAN) has GRO held off by it: neither is a finding, and `ethtool -K` on either would not
    give the stacked device GRO without changing the veth's design."""
    if software_type(nic) == "veth":
        return True
    seen = seen if seen is not None else set()
    seen.add(nic.name)
    for lower_name in nic.lowers or ():
        lower = facts.nic(lower_name)
        if lower is not None and lower.name not in seen and not _on(lower, "rx-gro") and \
                gro_off_by_design(facts, lower, seen):
            return True
    return False


@dataclass(frozen=True)
class OffGroup:
    """An offload group that is off on a NIC (and not by design), and the plan that would turn it on."""

    offload: Offload
    state: Feature  # the group's: on when any member is, fixed when all are
    plan: Plan

    @property
    def changeable(self) -> bool:
        """The guest can act on it: a command to run, or held off by a cause guestcheck names or cannot see."""
        return bool(self.plan.commands) or not self.plan.blocked


def off_groups(facts: Facts, nic: Nic) -> Tuple[OffGroup, ...]:
    """The offload groups that are off on `nic`, in OFFLOADS order: GRO held off by a veth's design is not."""
    out = []
    for offload in OFFLOADS:
        if offload.ethtool_name == "gro" and gro_off_by_design(facts, nic):
            continue  # veth ships with GRO off by design, and holds it off for what is stacked on it
        state = group_state(nic.features or {}, offload)
        if state is None or state.on:
            continue
        plan = plan_group(facts, nic, offload) if not state.fixed else Plan(blocked=["off [fixed]"])
        out.append(OffGroup(offload, state, plan))
    return tuple(out)


def backend_none(nic: Nic, groups: Tuple[OffGroup, ...]) -> List[OffGroup]:
    """The groups off beyond the guest's reach on virtio-net: the host's backend negotiated no offloads."""
    return [g for g in groups if not g.changeable] if nic.driver == "virtio_net" else []


def backend_summary(groups: List[OffGroup]) -> str:
    labels = ", ".join(g.offload.label for g in groups)
    return (f"{labels} off and fixed: the host's backend negotiated no offloads "
            "(user-mode networking, or a tap without vnet headers)")


def unknown_summary(nic: Nic) -> str:
    return f"offloads unknown ({nic.unknown.get('features', 'not read')})"


def offloads_to_enable(nic: Nic, facts: Optional[Facts] = None) -> Tuple[Dict[str, List[str]], List[str]]:
    """Per offload label doctor flags, the features to turn on, the ones they depend on first (plan_group's
    order: scatter-gather, then TX checksumming, then TSO), so the kernel takes them; plus notes on what only
    the host, or the lower device, can fix."""
    facts = facts if facts is not None else Facts(nics=[nic])
    if nic.features is None:
        return {}, [f"OFFLOAD-UNKNOWN: {unknown_summary(nic)}"]
    turn_on: Dict[str, List[str]] = {}
    notes = []
    groups = off_groups(facts, nic)
    for group in groups:
        if not group.changeable:
            continue
        offload = group.offload
        names = [f for i, f in group.plan.features if i == nic.name]
        for i, f in group.plan.features:
            if i != nic.name:
                notes.append(f"{offload.label}: turn on {f} on {i} first (`guestcheck tune offloads {i}`)")
        if names:
            turn_on[offload.label] = names
    backend = backend_none(nic, groups)
    if backend:
        notes.append(f"OFFLOAD-BACKEND-NONE: {backend_summary(backend)}")
    return _causes_first(turn_on), notes


def _causes_first(turn_on: Dict[str, List[str]]) -> Dict[str, List[str]]:
    """The labels in the order their features go on: each label's own feature is the last of its names (its
    causes come before it), so a label whose own feature is another's cause (scatter-gather for TSO) comes first.
    `--dry-run` lists them, and apply writes them, in this one order."""
    order: List[str] = []
    for names in turn_on.values():
        order += [n for n in names if n not in order]
    return dict(sorted(turn_on.items(), key=lambda item: order.index(item[1][-1])))
