"""The NIC features unit: `tune offloads IFACE` turns on what doctor flags, in doctor's dependency order.

What to turn on is the offload verdict's (service.py asks it, with the NIC's kind): this unit is given, per
offload label, the features to turn on, their causes first, and carries that out."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.tune import linkfile as lf
from guestcheck.tune.journal import State
from guestcheck.tune.units.nic import NicRequest, NicResult, NicUnit, Planned, Values


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

    def plan_values(self, et: Any, ifname: str, request: NicRequest, result: NicResult) -> Optional[Planned]:
        """`request.args["turn_on"]`: offload label -> features, in the order they go on (the verdict's);
        `request.args["notes"]`: what only the host, or the lower device, can fix."""
        turn_on: Dict[str, List[str]] = request.args["turn_on"]
        result.notes = list(request.args.get("notes", []))
        for label, names in turn_on.items():
            result.planned[label] = f"off -> on ({', '.join(names)})"
        order: List[str] = []
        for names in turn_on.values():
            order += [n for n in names if n not in order]

        def report(after: Values) -> None:
            for label, names in turn_on.items():
                on = [n for n in names if after.get(n)]
                if on:
                    result.done.append(f"{label}: on ({', '.join(on)})")
                if len(on) < len(names):
                    result.notes.append(f"{label}: the kernel kept {', '.join(n for n in names if n not in on)} "
                                        "off (a feature it depends on is off, or the driver refuses)")

        return Planned({n: True for n in order}, report) if result.planned else None
