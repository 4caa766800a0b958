"""One unit per subsystem the tuner changes, as TuneD's plugins each own one: sysctl keys, NIC features,
channels, rings and RPS masks, and the .link files (and udev rules) that carry the NIC settings over a reboot.
Each plans, applies, verifies and rolls back its own settings over the one journal (guestcheck/tune/state.py);
base.py says what a unit provides. `verify` and `rollback` go through UNITS in this order."""

from __future__ import annotations

from typing import List

from guestcheck.roots import Roots
from guestcheck.tune.state import State
from guestcheck.tune.units.base import Unit
from guestcheck.tune.units.channels import ChannelsUnit
from guestcheck.tune.units.features import FeaturesUnit
from guestcheck.tune.units.nic import LinkFilesUnit
from guestcheck.tune.units.rings import RingsUnit
from guestcheck.tune.units.rps import RpsUnit
from guestcheck.tune.units.sysctl import SysctlUnit
from guestcheck.tune.verify import Verification, subject_of

NIC_UNITS = (FeaturesUnit(), ChannelsUnit(), RingsUnit(), RpsUnit())  # RPS after channels: a queue gone is skipped
UNITS: List[Unit] = [SysctlUnit(), *NIC_UNITS, LinkFilesUnit()]


def nic_unit(name: str):  # type: ignore[no-untyped-def]
    return next(u for u in NIC_UNITS if u.name == name)


def touched_nic_units(state: State) -> List[str]:
    """The labels of the NIC units whose settings the journal holds ("offloads", "rings", "rps")."""
    return [u.label for u in NIC_UNITS if u.touched(state)]


def verify_journal(roots: Roots, state: State) -> Verification:
    """`tune verify` without a profile: every unit the journal touches checks its live values and what the
    next boot applies; one drift anywhere makes the whole NOT in force."""
    out = Verification(subject_of(state, touched_nic_units(state)))
    for unit in UNITS:
        if unit.touched(state):
            part = unit.verify(roots, state)
            out.checks += part.checks
            out.problems += part.problems
            out.notes += part.notes
    return out
