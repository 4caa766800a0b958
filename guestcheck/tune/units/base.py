"""What a unit provides: verify and rollback over the journal (plan and apply take unit-specific input, so
each unit has its own; the NIC units share theirs in nic.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Protocol

from guestcheck.roots import Roots
from guestcheck.tune.state import State
from guestcheck.tune.verify import Check  # one record of a checked setting, for every unit


@dataclass
class UnitVerification:
    checks: List[Check] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


@dataclass
class RollbackPlan:
    actions: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    todo: bool = False


class Unit(Protocol):
    name: str

    def touched(self, state: State) -> bool:
        """Whether the journal holds anything of this unit's."""

    def verify(self, roots: Roots, state: State) -> UnitVerification:
        """The live values and what the next boot applies, against what was applied."""
