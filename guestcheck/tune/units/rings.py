"""The rings unit: `tune rings IFACE` raises RX and TX rings to the device's maximum (or --rx/--tx). Larger
rings absorb bursts that would otherwise be dropped while the guest's vCPU is descheduled."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, Optional, Tuple

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.facts import Rings
from guestcheck.tune import TuneError
from guestcheck.tune import linkfile as lf
from guestcheck.tune.journal import RING_NAMES, State
from guestcheck.tune.units.nic import NicRequest, NicResult, NicUnit, Planned, Values


class RingsUnit(NicUnit):
    name = "rings"
    label = "rings"
    what = "ring sizes"

    def read(self, et: Any, ifname: str) -> Values:
        r = et.rings(ifname)
        return {k: getattr(r, k) for k in RING_NAMES}

    def write(self, et: Any, ifname: str, values: Values) -> None:
        et.set_rings(ifname, replace(et.rings(ifname), **values))

    def originals(self, state: State) -> Dict[str, Values]:
        return state.rings

    def link_settings(self, applied: Values) -> Tuple[Dict[str, str], Dict[str, str]]:
        return ({lf.RING_SETTING[k]: str(v) for k, v in applied.items() if k in lf.RING_SETTING},
                {f"G:{k.replace('_', '-')}": str(v) for k, v in applied.items() if k not in lf.RING_SETTING})

    def rule_args(self, applied: Values) -> Dict[str, str]:
        return {f"G:{k.replace('_', '-')}": str(v) for k, v in applied.items()}

    def plan_values(self, et: Any, ifname: str, request: NicRequest, result: NicResult) -> Optional[Planned]:
        """RX and TX at the device's maximum, or `request.args` "rx" and "tx"; only the ones that change."""
        try:
            before = et.rings(ifname)
        except EthtoolError as e:
            raise TuneError(f"cannot read the rings of {ifname}: {e} (the driver has no ring settings)") from None
        target = ring_target(before, request.args.get("rx"), request.args.get("tx"))
        if not target:
            raise TuneError(f"{ifname} reports no ring maximum: its driver has no ring sizes to raise")
        now = {k: getattr(before, k) for k in target}
        for k, want in target.items():
            if now[k] != want:
                result.planned[k] = f"{now[k]} -> {want} (device maximum {getattr(before, k + '_max')})"
        changed = {k: v for k, v in target.items() if now[k] != v}

        def report(after: Values) -> None:
            result.done = [f"{k}: {now[k]} -> {after[k]} (device maximum {getattr(before, k + '_max')})"
                           for k in changed]

        return Planned(changed, report) if result.planned else None


def ring_target(rings: Rings, rx: Optional[int], tx: Optional[int]) -> Dict[str, int]:
    """RX and TX at the device's maximum, or at what was asked for (within 1..maximum)."""
    target = {}
    for kind, asked, maximum in (("rx", rx, rings.rx_max), ("tx", tx, rings.tx_max)):
        if not maximum:
            if asked is not None:
                raise TuneError(f"the device reports no maximum for its {kind.upper()} ring: it cannot be set")
            continue
        if asked is not None and not 1 <= asked <= maximum:
            raise TuneError(f"--{kind} {asked} is outside 1..{maximum} (the device's maximum)")
        target[kind] = maximum if asked is None else asked
    return target
