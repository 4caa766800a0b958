"""The channels unit: `tune queues IFACE` sets min(vCPUs, the device's maximum) queues."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, Optional, Tuple

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.facts import Channels
from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune import linkfile as lf
from guestcheck.tune.ethtool_set import EthtoolWriter
from guestcheck.tune.state import CHANNEL_NAMES, State
from guestcheck.tune.units.nic import NicResult, NicUnit, Values, apply_nic, check_interface


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


def queue_target(channels: Channels, vcpus: int) -> Optional[Dict[str, int]]:
    """min(vCPUs, max) combined channels; separate rx/tx counts on devices without combined ones (veth)."""
    if channels.max_combined:
        return {"combined": min(vcpus, channels.max_combined)}
    if channels.max_rx and channels.max_tx:
        return {"rx": min(vcpus, channels.max_rx), "tx": min(vcpus, channels.max_tx)}
    return None


def apply_queues(ifname: str, roots: Roots, vcpus: int, *, dry_run: bool = False, persist: bool = True,
                 ethtool: Optional[EthtoolWriter] = None) -> NicResult:
    check_interface(roots, ifname)
    result = NicResult(ifname)
    with ethtool or EthtoolWriter() as et:
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
        result.nothing_to_do = not result.planned
        if result.nothing_to_do or dry_run:
            return result
        after = apply_nic(ChannelsUnit(), ifname, roots, et, target, persist=persist, result=result)
        result.done = [f"{k}: {now[k]} -> {after[k]} (device maximum {getattr(before, 'max_' + k)}, {vcpus} vCPUs)"
                       for k in target]
    return result
