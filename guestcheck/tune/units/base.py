"""What every unit provides, and what the engine (engine.py) gives it.

A unit owns one kind of setting (sysctl keys, NIC features, channels, rings, RPS masks, the .link files):
  - plan: what would change, from the live values and the journal; it changes nothing, and a dry run is its
    result. When something would change, the plan is a Run the engine carries out;
  - apply (Run.apply, then Run.persist): the live values, each read back, then the files the next boot reads;
  - verify: the live values and what the next boot applies, against what the journal says was applied;
  - rollback: a plan that changes nothing (for `--dry-run`), then the writes.
The order of a run (the journal first, complete last, the journal put back on failure) is the engine's alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Set, Tuple

from guestcheck.roots import Roots
from guestcheck.tune.journal import State
from guestcheck.tune.live import ProcSys
from guestcheck.tune.verify import Check  # one record of a checked setting, for every unit

__all__ = ["ApplyContext", "Check", "RollbackContext", "RollbackPlan", "Run", "TunableUnit", "Unit", "UnitVerification"]


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


class _SharedEthtool:
    """One ethtool writer per command, opened on first use (a sysctl-only run opens no socket)."""

    open_ethtool: Callable[[], Any]
    _ethtool: Optional[Any]

    def ethtool(self) -> Any:
        if self._ethtool is None:
            self._ethtool = self.open_ethtool()
        return self._ethtool


@dataclass
class ApplyContext(_SharedEthtool):
    """What a unit's plan is given: the roots, /proc/sys, the shared ethtool writer, and every NIC unit (a
    .link file carries the settings of all of them; a reboot forgets the live-only ones of all of them)."""

    roots: Roots
    procsys: ProcSys
    open_ethtool: Callable[[], Any]
    nic_units: Sequence[Any] = ()
    _ethtool: Optional[Any] = None


@dataclass
class RollbackContext(_SharedEthtool):
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


class Run(Protocol):
    """A unit's plan, as the engine carries it out: nothing is written until the engine says so."""

    result: Any  # what the command reports (a dry run reports it as it is)
    nothing_to_do: bool

    def journals(self) -> List[Tuple[State, int]]:
        """Every journal this run may write, with the bytes it may still grow by: checked before any change."""

    def journal_first(self) -> State:
        """The journal written before the first change: every original value this run could change."""

    def apply(self) -> None:
        """The live values, each read back; raises on the first that fails."""

    def persist(self) -> None:
        """What the next boot applies (the persist file, the .link file and udev rule)."""

    def undo(self, error: Exception, persisting: bool) -> Tuple[str, bool]:
        """After `error` (in persist when `persisting`): this run's writes put back; returns the message to raise
        and whether the journal before the run is to be written back (False: undoing failed, keep this one)."""

    def complete(self) -> State:
        """The journal to write last, marked complete."""


class Unit(Protocol):
    """Every unit: what verify and rollback go through (the .link files unit is only this: it is written as
    the persist step of the NIC units' runs)."""

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


class TunableUnit(Unit, Protocol):
    """A unit a command applies (every unit but the .link files)."""

    def plan(self, ctx: ApplyContext, old: Optional[State], request: Any, dry_run: bool) -> Run:
        """What this request would change against the journal `old`; changes nothing. Refusals raise, unless
        `dry_run` (then they are notes)."""
