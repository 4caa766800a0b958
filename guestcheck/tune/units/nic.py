"""What the NIC units (features, channels, rings, rps) share: one plan shape, one journal slot shape, one
run (the engine carries it out), verify and rollback. What carries them over a reboot is links.py.

A NIC unit's run, for one interface, under the tuner's lock (engine.py says the order):
  1. the journal gets the unit's original values and, when persisting, what was at the .link and rule paths;
  2. the live values are written through ethtool (or sysfs) and read back;
  3. the .link file (and a udev rule where a .link cannot say it) is written atomically;
  4. the journal is marked complete.
A failure in 2 or 3 puts the live values, the files and the journal back as they were.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.names import valid_ifname
from guestcheck.roots import Roots
from guestcheck.text import escape_control
from guestcheck.tune import TuneError
from guestcheck.tune.ethtool_set import EthtoolWriter
from guestcheck.tune.identity import check_same, forget_unused, locate
from guestcheck.tune.journal import State
from guestcheck.tune.live import ProcSys, boot_id
from guestcheck.tune.units.base import ApplyContext, Check, RollbackContext, RollbackPlan, UnitVerification
from guestcheck.tune.units.links import Pending, prepare_link, unwrite_link, write_link

Values = Dict[str, Any]


@dataclass
class NicResult:
    ifname: str
    planned: Dict[str, str] = field(default_factory=dict)  # what -> "before -> after"
    done: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    nothing_to_do: bool = False
    persisted: List[str] = field(default_factory=list)  # the files written for the next boot
    said: List[str] = field(default_factory=list)  # the owners guard's lines, said before the result (service.py)


@dataclass
class NicRequest:
    """What a NIC command asks of its unit: the interface, and the unit's own arguments (`args`)."""

    ifname: str
    persist: bool = True
    args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Planned:
    target: Values  # the values to write (the unit's subset)
    report: Callable[[Values], None]  # given what reads back after the write, fills the result's done lines


class NicUnit:
    """One NIC subsystem. Subclasses say how to read, write and persist their values."""

    name = ""
    what = ""  # "offloads", "channel counts", "ring sizes"
    label = ""  # "offloads", "queues", "rings": how `verify` names what the journal holds

    def read(self, et: Any, ifname: str) -> Values:
        raise NotImplementedError

    def snapshot(self, et: Any, ifname: str) -> Values:
        """What the journal keeps as the original (rollback writes it back)."""
        return self.read(et, ifname)

    def write(self, et: Any, ifname: str, values: Values) -> None:
        raise NotImplementedError

    def originals(self, state: State) -> Dict[str, Values]:
        raise NotImplementedError

    def link_settings(self, applied: Values) -> Tuple[Dict[str, str], Dict[str, str]]:
        """(.link [Link] settings, udev rule ethtool args for what a .link file cannot say)."""
        raise NotImplementedError

    def rule_args(self, applied: Values) -> Dict[str, str]:
        """Everything as ethtool args, for when another .link file wins and only a rule can carry it."""
        raise NotImplementedError

    def show(self, value: Any) -> str:
        return str(value)

    def plan_values(self, et: Any, ifname: str, request: Any, result: NicResult) -> Optional[Planned]:
        """The unit's own part of the plan: the target values (a subset of the unit's) with `result.planned`
        filled in, or None when nothing would change; raises TuneError when it cannot be set at all."""
        raise NotImplementedError

    def access(self, roots: Roots, et: Any) -> Any:
        """What read/write/restore are given: the ethtool writer (the RPS unit wraps it with the sysfs files)."""
        return et

    # --- plan, verify and rollback, the same for every NIC unit ---------------------------------------------

    def plan(self, ctx: ApplyContext, old: Optional[State], request: Any, dry_run: bool) -> NicRun:
        """`request.ifname`'s target values; when something would change and this is not a dry run, the
        journal this run writes first (the device's identity, the originals, what is at the .link paths)."""
        check_interface(ctx.roots, request.ifname)
        result = NicResult(request.ifname)
        et = self.access(ctx.roots, ctx.ethtool())
        planned = self.plan_values(et, request.ifname, request, result)
        result.nothing_to_do = not result.planned
        run = NicRun(self, ctx, et, request, result, old, planned)
        if not (result.nothing_to_do or dry_run):
            run.prepare()
        return run

    def touched(self, state: State) -> bool:
        return bool(self.originals(state))

    def verify(self, roots: Roots, state: State, et: Optional[Any] = None) -> UnitVerification:
        """The live values of each tuned device, found by its identity (identity.py): under a new name when it
        was renamed; a different device that took the name is a problem, never checked in its place."""
        out = UnitVerification()
        applied = state.applied.get(self.name, {})
        if not applied:
            return out
        boot = boot_id(ProcSys(roots))
        with et or EthtoolWriter() as opened:
            et = self.access(roots, opened)
            for ifname, values in applied.items():
                where = locate(roots, et, state, ifname, boot)
                if where.name is None and where.other:
                    out.problems.append(f"{where.refusal()}: its {self.what} were not checked")
                    continue
                name = where.name or ifname
                if where.renamed:
                    out.notes.append(f"{name} is the device tuned as {ifname} (renamed since)")
                try:
                    live = self.read(et, name)
                except EthtoolError as e:
                    out.problems.append(f"{name}: cannot read its {self.what} ({e})")
                    continue
                for k, want in values.items():
                    have = live.get(k)
                    out.checks.append(Check(f"{name} {k}", self.show(want), None if have is None else self.show(have),
                                            have == want, "" if have == want else "changed since tune"))
                record = state.links.get(ifname)
                if record is None:
                    out.notes.append(f"{name}: {self.what} set live only (--no-persist): the next boot undoes them")
                    continue
                settings, leftover = (self.link_settings(values) if record.settings or not record.rule_args
                                      else ({}, self.rule_args(values)))
                for key, value in settings.items():
                    if record.settings.get(key) != value:
                        out.problems.append(f"{ifname}: the journal's .link settings lack {key}={value}")
                for key, value in leftover.items():
                    if record.rule_args.get(key) != value:
                        out.problems.append(f"{ifname}: the journal's udev rule lacks {key[2:]} {value}")
        return out

    def _targets(self, ctx: RollbackContext, notes: List[str]) -> Iterator[Tuple[str, str, Values]]:
        """(journal name, the device's name now, originals) for each device to restore; notes for the others."""
        for ifname, original in self.originals(ctx.state).items():
            if ctx.rebooted and ifname not in ctx.state.links:
                notes.append(f"{ifname}: {self.what} were changed live only, and the reboot since put them "
                             "back: nothing to restore")
                continue
            where = ctx.where.get(ifname)
            if ifname in ctx.leave:
                notes.append(f"{ifname}: its {self.what} were left as they are (--leave)")
                continue
            if where is not None and where.name is None:
                notes.append(f"{ifname}: interface gone, its {self.what} were not restored")
                continue
            if where is not None and where.other:
                notes.append(f"{ifname} is now another device ({where.other}): left alone")
            yield ifname, (where.name if where is not None and where.name else ifname), original

    def rollback_plan(self, ctx: RollbackContext) -> RollbackPlan:
        plan = RollbackPlan()
        for ifname, name, _original in self._targets(ctx, plan.notes):
            plan.actions.append(f"{name}: restore {self.what}" + (f" (tuned as {ifname})" if name != ifname else ""))
            plan.todo = True
        return plan

    def rollback(self, ctx: RollbackContext, plan: RollbackPlan, notes: List[str]) -> List[str]:
        errors = []
        for _ifname, name, original in self._targets(ctx, []):
            try:
                self.restore(self.access(ctx.roots, ctx.ethtool()), name, original)
            except EthtoolError as e:
                if e.reason == "no-device":
                    notes.append(f"{name}: interface gone, its {self.what} were not restored")
                else:
                    errors.append(f"{name}: {e}")
        return errors

    def restore(self, et: Any, ifname: str, original: Values) -> None:
        self.write(et, ifname, original)


def check_interface(roots: Roots, ifname: str) -> None:
    if not valid_ifname(ifname) or not os.path.isdir(os.path.join(roots.sys, "class/net", ifname)):
        raise TuneError(f"no network interface named {escape_control(repr(ifname))} here")


def forget_live_only(journal: State, nic_units: Sequence[NicUnit]) -> None:
    """After a reboot, live-only NIC settings are gone: their originals and applied values go too."""
    for unit in nic_units:
        slot = unit.originals(journal)
        for ifname in [i for i in slot if i not in journal.links]:
            del slot[ifname]
            journal.applied.get(unit.name, {}).pop(ifname, None)
    forget_unused(journal)


READ_BACK_SLACK = 4096  # the values read back may be longer than the ones asked for (digits): never by more


class NicRun:
    """One NIC unit's change on one interface: the journal it writes first, the live write and its read-back,
    the .link file and rule, and how each is undone."""

    def __init__(self, unit: NicUnit, ctx: ApplyContext, et: Any, request: NicRequest, result: NicResult,
                 old: Optional[State], planned: Optional[Planned]) -> None:
        self.unit, self.ctx, self.et, self.request, self.result = unit, ctx, et, request, result
        self.ifname = request.ifname
        self.old, self.planned = old, planned
        self.nothing_to_do = result.nothing_to_do
        self.others = [u for u in ctx.nic_units if u.name != unit.name]
        self.journal = State()
        self.original: Values = {}
        self.pending: Optional[Pending] = None
        self.after: Values = {}

    def prepare(self) -> None:
        """The journal as it was plus this run's originals, marked in progress. After a reboot, live-only NIC
        settings are gone: today's values are the originals; persisted ones are kept."""
        roots, ifname, unit = self.ctx.roots, self.ifname, self.unit
        journal = self.old.copy() if self.old else State()
        journal.complete = False
        current = boot_id(ProcSys(roots))
        if journal.boot_id != current:  # (a journal with NIC identities of another boot: see identity.py)
            if journal.boot_id and current:
                forget_live_only(journal, self.ctx.nic_units)
            journal.boot_id = current
        check_same(roots, self.et, journal, ifname, journal.boot_id)  # the device, not only its name
        try:
            self.original = unit.snapshot(self.et, ifname)
        except EthtoolError as e:
            raise TuneError(f"cannot read the {unit.what} of {ifname}: {e}") from None
        unit.originals(journal).setdefault(ifname, self.original)
        if self.request.persist:
            self.pending = prepare_link(roots, self.et, journal, ifname, self.result.notes)
        self.journal = journal

    @property
    def target(self) -> Values:
        return self.planned.target if self.planned else {}

    def journals(self) -> List[Tuple[State, int]]:
        """What rollback must read, now and once complete (at most: every target value applied, and every
        unit's settings in the .link file and the rule both, since what is written is a subset)."""
        final = self.journal.copy()
        final.applied.setdefault(self.unit.name, {}).setdefault(self.ifname, {}).update(self.target)
        record = final.links.get(self.ifname)
        if record is not None:
            settings, leftover = self.unit.link_settings(self.target)
            record.settings.update(settings)
            record.rule_args.update(leftover)
            for each in (self.unit, *self.others):
                values = final.applied.get(each.name, {}).get(self.ifname)
                if values:
                    record.rule_args.update(each.rule_args(values))
        final.complete = True
        return [(self.journal, 0), (final, READ_BACK_SLACK)]

    def journal_first(self) -> State:
        return self.journal

    def apply(self) -> None:
        unit, ifname = self.unit, self.ifname
        unit.write(self.et, ifname, self.target)
        after = unit.read(self.et, ifname)
        applied = self.journal.applied.setdefault(unit.name, {}).setdefault(ifname, {})
        applied.update({k: after[k] for k in self.target if k in after})
        self.after = after

    def persist(self) -> None:
        if self.pending is not None:
            applied = self.journal.applied[self.unit.name][self.ifname]
            write_link(self.ctx.roots, self.unit, self.others, self.journal, self.ifname, applied, self.pending,
                       self.result.notes, self.result.persisted)

    def undo(self, error: Exception, persisting: bool) -> Tuple[str, bool]:
        with contextlib.suppress(EthtoolError):
            self.unit.restore(self.et, self.ifname, self.original)
        if not persisting:
            return f"cannot set the {self.unit.what} of {self.ifname}: {error}; nothing was changed", True
        unwrite_link(self.ctx.roots, self.old, self.journal, self.ifname)
        why = f"cannot write {error.filename}: {error.strerror}" if isinstance(error, OSError) else str(error)
        return f"{why}; undid the live change: the system is as it was", True

    def complete(self) -> State:
        journal, unit, ifname = self.journal, self.unit, self.ifname
        if all(self.original.get(k) == v for k, v in self.after.items() if k in self.original):
            del unit.originals(journal)[ifname]  # nothing differs from the original any more
            journal.applied.get(unit.name, {}).pop(ifname, None)
        journal.applied = {u: per for u, per in journal.applied.items() if per}
        forget_unused(journal)
        journal.complete = True
        if self.planned is not None:
            self.planned.report(self.after)
        return journal
