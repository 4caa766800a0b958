"""One unit per subsystem the tuner changes, as TuneD's plugins each own one: sysctl keys, NIC features,
channels and rings. Each plans, applies, verifies and rolls back its own settings over the one journal
(guestcheck/tune/state.py); base.py says what a unit provides."""

from __future__ import annotations

from typing import List

from guestcheck.tune.units.base import Unit
from guestcheck.tune.units.channels import ChannelsUnit
from guestcheck.tune.units.features import FeaturesUnit
from guestcheck.tune.units.rings import RingsUnit
from guestcheck.tune.units.sysctl import SysctlUnit

NIC_UNITS = (FeaturesUnit(), ChannelsUnit(), RingsUnit())
UNITS: List[Unit] = [SysctlUnit(), *NIC_UNITS]


def nic_unit(name: str):  # type: ignore[no-untyped-def]
    return next(u for u in NIC_UNITS if u.name == name)
