"""The tuner's engine: the one place that changes the machine's settings, for any unit (units/).

Every run follows one order, so a crash at any point can be rolled back:
  1. the journal (original values of everything about to change) is written, atomically, first, once it is
     known to fit what `rollback` reads (check_fits);
  2. the unit writes the live values, each read back;
  3. the unit writes what the next boot applies (/etc/sysctl.d/90-guestcheck.conf, the .link file and rule);
  4. the journal is rewritten as complete.
A failure in 2 or 3 undoes this run's writes (the unit's undo) and puts the journal back as it was. The lock
is taken before the journal is read; where no tuner has run yet (no lock file), a pass that changes nothing
comes first, so a run with nothing to do (or refused) creates nothing, not even the lock file. `rollback` has
every unit the journal touches plan its rollback, then carry it out, and deletes the journal last, so an
interrupted rollback can simply be run again.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, TypeVar

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune.ethtool_set import EthtoolWriter
from guestcheck.tune.identity import locate
from guestcheck.tune.journal import State, check_fits, io_errors, load_state, lock_path, locked, save_state
from guestcheck.tune.live import ProcSys, boot_id
from guestcheck.tune.persist import os_error
from guestcheck.tune.units.base import ApplyContext, RollbackContext, Run, TunableUnit, Unit
from guestcheck.tune.units.channels import ChannelsUnit
from guestcheck.tune.units.features import FeaturesUnit
from guestcheck.tune.units.links import LinkFilesUnit
from guestcheck.tune.units.rings import RingsUnit
from guestcheck.tune.units.rps import RpsUnit
from guestcheck.tune.units.sysctl import SysctlUnit
from guestcheck.tune.verify import Verification, subject_of

NIC_UNITS = (FeaturesUnit(), ChannelsUnit(), RingsUnit(), RpsUnit())  # RPS after channels: a queue gone is skipped
UNITS: List[Unit] = [SysctlUnit(), *NIC_UNITS, LinkFilesUnit()]  # the order of verify and rollback

_FAILED = (TuneError, OSError, EthtoolError)  # what a unit's apply or persist raises


# --- apply -----------------------------------------------------------------------------------------------

def apply(unit: TunableUnit, request: Any, roots: Roots, *, dry_run: bool = False,
          procsys: Optional[ProcSys] = None, ethtool: Optional[Any] = None) -> Any:
    """Plan `request` with `unit` and, unless `dry_run` or nothing would change, carry it out; returns the
    unit's result. The plan is made again under the lock, from the journal read there."""
    procsys = procsys or ProcSys(roots)
    with contextlib.ExitStack() as stack:
        ctx = ApplyContext(roots, procsys, lambda: stack.enter_context(ethtool or EthtoolWriter()), NIC_UNITS)
        if dry_run:
            return unit.plan(ctx, load_state(roots), request, True).result

        def run(probe: bool) -> Any:
            old = load_state(roots)
            planned = unit.plan(ctx, old, request, False)
            if not (probe or planned.nothing_to_do):
                execute(roots, planned, old)
            return planned

        return _under_lock(roots, run, lambda planned: planned.nothing_to_do, "nothing was changed").result


R = TypeVar("R")


def _under_lock(roots: Roots, run: Callable[[bool], R], idle: Callable[[R], bool], consequence: str) -> R:
    """run(probe=False) with the lock taken before the journal is read. Where no tuner has run yet (no lock
    file), a probe that writes nothing comes first, so a run with nothing to do creates nothing, not even the
    lock file; all that is written is still decided from a journal read under the lock."""
    if not os.path.lexists(lock_path(roots)):
        probe = run(True)
        if idle(probe):
            return probe
    with io_errors(consequence), locked(roots):
        return run(False)


def execute(roots: Roots, run: Run, old: Optional[State]) -> None:
    """Journal first, apply (read back), persist, complete; a failure undoes this run and its journal."""
    for journal, slack in run.journals():
        check_fits(journal, slack)  # what rollback must read, before anything changes
    save_state(roots, run.journal_first())  # 1. the journal, before anything changes
    persisting = False
    try:
        run.apply()  # 2. live values, read back
        persisting = True
        run.persist()  # 3. what the next boot applies
    except _FAILED as e:
        message, restore = run.undo(e, persisting)
        if restore:
            save_state(roots, old)
        raise TuneError(message) from None
    try:
        save_state(roots, run.complete())  # 4. complete
    except OSError as e:
        raise TuneError(f"applied, but the journal could not be marked complete ({os_error(e)}); "
                        "`guestcheck tune rollback` still restores the original values") from None


# --- verify ----------------------------------------------------------------------------------------------

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


# --- rollback --------------------------------------------------------------------------------------------

@dataclass
class RollbackResult:
    actions: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    nothing_to_do: bool = False


def rollback(roots: Roots, *, dry_run: bool = False, procsys: Optional[ProcSys] = None,
             ethtool: Optional[EthtoolWriter] = None, leave: Sequence[str] = ()) -> RollbackResult:
    """Everything back as it was before guestcheck. `leave`: journal interface names whose live NIC values are
    not written (a tuned device gone for good, whose name another device took); their files are restored."""
    procsys = procsys or ProcSys(roots)
    if dry_run:
        return _rollback(roots, procsys, ethtool, dry_run=True, leave=set(leave))
    return _under_lock(roots, lambda probe: _rollback(roots, procsys, ethtool, dry_run=probe, leave=set(leave)),
                       lambda r: r.nothing_to_do, "run rollback again")


def _rollback(roots: Roots, procsys: ProcSys, ethtool: Optional[EthtoolWriter], *, dry_run: bool,
              leave: Set[str]) -> RollbackResult:
    """Each unit the journal touches plans its rollback (sysctl keys first, the .link files last), then each
    carries its plan out; the journal goes last, so an interrupted rollback can be run again. Every tuned NIC
    is found by its identity first: a different device that took a tuned name refuses the whole rollback."""
    state = load_state(roots)
    result = RollbackResult()
    if state is None:
        result.nothing_to_do = True
        return result
    with contextlib.ExitStack() as stack:
        ctx = RollbackContext(roots, procsys, state, _rebooted(procsys, state),
                              lambda: stack.enter_context(ethtool or EthtoolWriter()), leave=leave)
        ctx.where = _locate_nics(ctx)
        plans = [(unit, unit.rollback_plan(ctx)) for unit in UNITS if unit.touched(state)]
        for _unit, plan in plans:
            result.actions += plan.actions
            result.notes += plan.notes
        if dry_run:
            return result
        errors: List[str] = []
        restored: List[str] = []  # the units whose rollback went through, said when another's did not
        for unit, plan in plans:
            if plan.todo:
                own = unit.rollback(ctx, plan, result.notes)
                errors += own
                restored += [] if own else [unit.label]
    if errors:
        done = f"{', '.join(restored)} restored, " if restored else ""
        raise TuneError(f"rollback incomplete: {errors[0]} ({done}the journal is kept; run rollback again)")
    save_state(roots, None)  # last: an interrupted rollback can be run again
    return result


def _locate_nics(ctx: RollbackContext) -> Dict[str, Any]:
    """Journal name -> identity.Located for every NIC whose live values rollback would write; TuneError (nothing
    written yet) when a different device has taken the name of one that is not here."""
    state = ctx.state
    names = sorted({name for unit in NIC_UNITS for name in unit.originals(state)
                    if name not in ctx.leave and not (ctx.rebooted and name not in state.links)})
    if not names:
        return {}
    boot = boot_id(ctx.procsys)
    where = {name: locate(ctx.roots, ctx.ethtool(), state, name, boot) for name in names}
    for found in where.values():
        if found.name is None and found.other:
            raise TuneError(f"rollback refused: {found.refusal()}, and it is not written; nothing was changed "
                            f"(the journal is kept: run rollback again when that device is back, or with "
                            f"`--leave {found.tuned}` if it is gone for good)")
    return where


def _rebooted(procsys: ProcSys, state: State) -> bool:
    current = boot_id(procsys)
    return bool(state.boot_id and current and state.boot_id != current)
