"""The channels unit: `tune queues IFACE` sets min(vCPUs, the device's maximum) queues."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, Optional, Tuple

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.facts import Channels
from guestcheck.tune import TuneError
from guestcheck.tune import linkfile as lf
from guestcheck.tune.journal import CHANNEL_NAMES, State
from guestcheck.tune.units.nic import NicRequest, NicResult, NicUnit, Planned, Values


class ChannelsUnit(NicUnit):
    name = "channels"
    label = "queues"
    what = "channel counts"

    def read(self, et: Any, ifname: str) -> Values:
        ch = et.channels(ifname)
        return {k: getattr(ch, k) for k in CHANNEL_NAMES}

    def write(self, et: Any, ifname: str, values: Values) -> None:
        et.set_channels(ifname, replace(et.channels(ifname), **values))

    def originals(self, state: State) -> Dict[str, Values]:
        return state.channels

    def link_settings(self, applied: Values) -> Tuple[Dict[str, str], Dict[str, str]]:
        return {lf.CHANNEL_SETTING[k]: str(v) for k, v in applied.items()}, {}

    def rule_args(self, applied: Values) -> Dict[str, str]:
        return {f"L:{k}": str(v) for k, v in applied.items()}

    def plan_values(self, et: Any, ifname: str, request: NicRequest, result: NicResult) -> Optional[Planned]:
        """min(vCPUs, the device's maximum) queues (`request.args["vcpus"]`)."""
        vcpus = request.args["vcpus"]
        try:
            before = et.channels(ifname)
        except EthtoolError as e:
            raise TuneError(f"cannot read the channels of {ifname}: {e} (the driver has no queue settings)") from None
        target = queue_target(before, vcpus)
        if target is None:
            raise TuneError(f"{ifname} has a fixed single queue: only the host can add queues "
                            "(see `guestcheck explain QUEUES-SINGLE-VIRTIO`)")
        now = {k: getattr(before, k) for k in target}
        for k, want in target.items():
            if now[k] != want:
                result.planned[k] = f"{now[k]} -> {want} (device maximum {getattr(before, 'max_' + k)}, {vcpus} vCPUs)"

        def report(after: Values) -> None:
            result.done = [f"{k}: {now[k]} -> {after[k]} (device maximum {getattr(before, 'max_' + k)}, "
                           f"{vcpus} vCPUs)" for k in target]

        return Planned(target, report) if result.planned else None


def queue_target(channels: Channels, vcpus: int) -> Optional[Dict[str, int]]:
    """min(vCPUs, max) combined channels; separate rx/tx counts on devices without combined ones (veth)."""
    if channels.max_combined:
        return {"combined": min(vcpus, channels.max_combined)}
    if channels.max_rx and channels.max_tx:
        return {"rx": min(vcpus, channels.max_rx), "tx": min(vcpus, channels.max_tx)}
    return None
