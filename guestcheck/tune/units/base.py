"""What every unit provides: whether the journal holds its settings, a verify, and a rollback in two steps
(a plan that changes nothing, for `--dry-run`, then the writes). Apply takes unit-specific input (a profile,
an interface and its targets), so each unit has its own; the NIC units share theirs in nic.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Protocol, Set

from guestcheck.roots import Roots
from guestcheck.tune.live import ProcSys
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
    detail: Any = None  # what the unit's own rollback needs from its plan (the sysctl unit's writes)


@dataclass
class RollbackContext:
    """What a rollback gives every unit: the roots, the journal, whether the machine rebooted since the journal
    was written (a live-only NIC change is gone then), and one ethtool writer shared by the NIC units."""

    roots: Roots
    procsys: ProcSys
    state: State
    rebooted: bool
    open_ethtool: Callable[[], Any]
    _ethtool: Optional[Any] = None
    where: Dict[str, Any] = field(default_factory=dict)  # journal name -> identity.Located (found by identity)
    leave: Set[str] = field(default_factory=set)  # journal names whose live values are left alone (--leave)

    def ethtool(self) -> Any:
        """The shared writer, opened on first use (a rollback of sysctl keys alone opens no socket)."""
        if self._ethtool is None:
            self._ethtool = self.open_ethtool()
        return self._ethtool


class Unit(Protocol):
    name: str
    label: str  # how `verify` names the unit's settings ("offloads", "rings")

    def touched(self, state: State) -> bool:
        """Whether the journal holds anything of this unit's."""

    def verify(self, roots: Roots, state: State) -> UnitVerification:
        """The live values and what the next boot applies, against what was applied."""

    def rollback_plan(self, ctx: RollbackContext) -> RollbackPlan:
        """What rollback would do; changes nothing."""

    def rollback(self, ctx: RollbackContext, plan: RollbackPlan, notes: List[str]) -> List[str]:
        """Carry out the plan; returns the errors (the journal is kept when there are any)."""
