"""The NIC features unit: `tune offloads IFACE` turns on what doctor flags, in doctor's dependency order."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.facts import Facts, Nic
from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune import linkfile as lf
from guestcheck.tune.ethtool_set import EthtoolWriter
from guestcheck.tune.state import State
from guestcheck.tune.units.nic import NicResult, NicUnit, Values, apply_nic, check_interface


class FeaturesUnit(NicUnit):
    name = "features"
    label = "offloads"
    what = "offloads"

    def read(self, et: Any, ifname: str) -> Values:
        return {n: f.on for n, f in et.features(ifname).items()}

    def snapshot(self, et: Any, ifname: str) -> Values:
        """What was asked for, not only what is active, so rollback restores "off [requested on]" too."""
        return et.requested_features(ifname)

    def write(self, et: Any, ifname: str, values: Values) -> None:
        et.set_features(ifname, values)

    def restore(self, et: Any, ifname: str, original: Values) -> None:
        requested = et.requested_features(ifname)
        wanted = {n: on for n, on in original.items() if n in requested and requested[n] != on}
        if wanted:
            et.set_features(ifname, wanted)
            stuck = [n for n, on in wanted.items() if et.requested_features(ifname).get(n) != on]
            if stuck:
                raise EthtoolError("refused", f"the kernel kept {', '.join(stuck)} as they were")

    def originals(self, state: State) -> Dict[str, Values]:
        return state.features

    def show(self, value: Any) -> str:
        return "on" if value else "off"

    def link_settings(self, applied: Values) -> Tuple[Dict[str, str], Dict[str, str]]:
        settings, leftover = {}, {}
        for name, on in applied.items():
            if name in lf.FEATURE_SETTING:
                settings[lf.FEATURE_SETTING[name]] = "yes" if on else "no"
            else:
                leftover[f"K:{name}"] = "on" if on else "off"
        return settings, leftover

    def rule_args(self, applied: Values) -> Dict[str, str]:
        return {f"K:{n}": "on" if on else "off" for n, on in applied.items()}


def offloads_to_enable(nic: Nic, facts: Optional[Facts] = None) -> Tuple[Dict[str, List[str]], List[str]]:
    """Per offload label doctor flags, the features to turn on, the ones they depend on first (plan_group's
    order: scatter-gather, then TX checksumming, then TSO), so the kernel takes them; plus notes on what only
    the host, or the lower device, can fix."""
    from guestcheck.checks.offload import OFFLOADS, check_nic, plan_group

    facts = facts if facts is not None else Facts(nics=[nic])
    by_id = {o.finding_id: o for o in OFFLOADS}
    turn_on: Dict[str, List[str]] = {}
    notes = []
    for finding in check_nic(nic, facts):
        offload = by_id.get(finding.id)
        if offload is None:
            notes.append(f"{finding.id}: {finding.summary}")
            continue
        plan = plan_group(facts, nic, offload)
        names = [f for i, f in plan.features if i == nic.name]
        for i, f in plan.features:
            if i != nic.name:
                notes.append(f"{offload.label}: turn on {f} on {i} first (`guestcheck tune offloads {i}`)")
        if names:
            turn_on[offload.label] = names
    return _causes_first(turn_on), notes


def _causes_first(turn_on: Dict[str, List[str]]) -> Dict[str, List[str]]:
    """The labels in the order their features go on: each label's own feature is the last of its names (its
    causes come before it), so a label whose own feature is another's cause (scatter-gather for TSO) comes first.
    `--dry-run` lists them, and apply writes them, in this one order."""
    order: List[str] = []
    for names in turn_on.values():
        order += [n for n in names if n not in order]
    return dict(sorted(turn_on.items(), key=lambda item: order.index(item[1][-1])))


def apply_offloads(ifname: str, roots: Roots, *, dry_run: bool = False, persist: bool = True,
                   ethtool: Optional[EthtoolWriter] = None) -> NicResult:
    check_interface(roots, ifname)
    result = NicResult(ifname)
    unit = FeaturesUnit()
    with ethtool or EthtoolWriter() as et:
        from guestcheck.checks.nic import classify_nic
        from guestcheck.collect.nics import collect_nic

        nic = collect_nic(roots, ifname, et)  # doctor's own view of the NIC
        if nic is None:
            raise TuneError(f"no network interface named {ifname!r} here")
        classify_nic(nic, in_vm=False)  # its software type: doctor does not flag a veth's GRO
        if nic.features is None:
            raise TuneError(f"cannot read the offloads of {ifname}: {nic.unknown.get('features', 'unknown')}")
        facts = Facts(nics=[nic])
        for lower in nic.lowers or ():
            other = collect_nic(roots, lower, et)
            if other is not None:
                facts.nics.append(other)
        turn_on, result.notes = offloads_to_enable(nic, facts)
        for label, names in turn_on.items():
            result.planned[label] = f"off -> on ({', '.join(names)})"
        result.nothing_to_do = not result.planned
        if result.nothing_to_do or dry_run:
            return result
        order: List[str] = []
        for names in turn_on.values():
            order += [n for n in names if n not in order]
        after = apply_nic(unit, ifname, roots, et, {n: True for n in order}, persist=persist, result=result)
        for label, names in turn_on.items():
            on = [n for n in names if after.get(n)]
            if on:
                result.done.append(f"{label}: on ({', '.join(on)})")
            if len(on) < len(names):
                result.notes.append(f"{label}: the kernel kept {', '.join(n for n in names if n not in on)} off "
                                    "(a feature it depends on is off, or the driver refuses)")
    return result
