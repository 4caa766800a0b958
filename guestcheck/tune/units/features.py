"""The NIC features unit: `tune offloads IFACE` turns on what doctor flags, in doctor's dependency order."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.facts import Facts
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


def apply_offloads(ifname: str, roots: Roots, *, dry_run: bool = False, persist: bool = True,
                   ethtool: Optional[EthtoolWriter] = None) -> NicResult:
    check_interface(roots, ifname)
    result = NicResult(ifname)
    unit = FeaturesUnit()
    with ethtool or EthtoolWriter() as et:
        from guestcheck.collect.nics import collect_nic
        from guestcheck.judge.offload import offloads_to_enable

        nic = collect_nic(roots, ifname, et)  # doctor's own view of the NIC
        if nic is None:
            raise TuneError(f"no network interface named {ifname!r} here")
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
