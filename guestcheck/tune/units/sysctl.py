"""The sysctl unit: profile keys written to /proc/sys and persisted in /etc/sysctl.d/90-guestcheck.conf.

Its plan is plan.py's diff against the live kernel (and the journal), with the journals the run would write;
its apply writes each key and reads it back, its persist writes the persist file; a failure puts back the keys
this run wrote. Its verify is verify.py; its rollback writes every original back, then the persist file.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from guestcheck.collect.kernel import in_initial_netns
from guestcheck.quantities import int_fields, maybe_int
from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune.journal import JournalTooLarge, SizingRecord, State, SysctlBackup, check_fits, persist_path
from guestcheck.tune.live import ProcSys
from guestcheck.tune.persist import (
    ABSENT,
    FILE,
    MASKED,
    PERSIST_MODE,
    SYMLINK,
    PersistFile,
    inspect,
    os_error,
    persist_holds,
    put_persist,
    render,
)
from guestcheck.tune.plan import HOST, SKIP, Change, Plan, plan_profile
from guestcheck.tune.profile import Profile, normalise_value
from guestcheck.tune.units.base import ApplyContext, RollbackContext, RollbackPlan, UnitVerification
from guestcheck.tune.verify import verify_applied

PAUSE_ENV = "GUESTCHECK_TEST_PAUSE_AFTER_WRITE"  # test-only: "N" pauses 60 s after the N-th /proc/sys write


def same_value(a: str, b: str) -> bool:
    try:
        return int_fields(a) == int_fields(b)
    except ValueError:
        return normalise_value(a) == normalise_value(b)


def write_sysctl(procsys: ProcSys, key: str, value: str) -> None:
    """Write one key and read it back; raises TuneError when the kernel refuses or keeps another value."""
    try:
        fd = os.open(procsys.path(key), os.O_WRONLY | os.O_TRUNC)  # never O_CREAT: keys are the kernel's
        try:
            os.write(fd, (value + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise TuneError(f"the kernel refused {key} = {value} ({os_error(e)})") from None
    now = procsys.read(key)
    if now is None or not same_value(now, value):
        raise TuneError(f"{key} reads {now!r} after writing {value!r}")


def _test_pause(key: str, count: int) -> None:
    """Test hook: report each write and stop for a minute after the N-th, so a test can kill us there."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted:
        return
    print(f"guestcheck-test: wrote {key}", file=sys.stderr, flush=True)
    if count == maybe_int(wanted):
        time.sleep(60)


@dataclass
class ApplyResult:
    plan: Plan
    persist_path: str
    persist_text: Optional[str]  # the file's content after apply (None: no file)
    written: List[Change] = field(default_factory=list)
    nothing_to_do: bool = False
    notes: List[str] = field(default_factory=list)
    said: List[str] = field(default_factory=list)  # the guards' lines, said before the result (service.py)


@dataclass
class SysctlRequest:
    profile: Profile  # already sized to the path when `sizing` says how: it is journaled with the values
    sizing: Optional[SizingRecord] = None


def persist_text(profile: Profile, journal: Dict[str, SysctlBackup]) -> Optional[str]:
    if not journal:
        return None
    entries = []
    for key, backup in journal.items():
        setting = profile.settings.get(key)
        reason = setting.reason if setting else "kept from an earlier profile (its key is not settable here now)"
        entries.append((key, backup.applied, reason))
    return render(profile.name, profile.summary, entries)


def new_journal(plan: Plan, old: Optional[State]) -> Dict[str, SysctlBackup]:
    """Keys that will differ from their original after this apply, in profile order."""
    journal = {k: SysctlBackup(original, c.target or "")
               for k, original in plan.backups().items() for c in plan.changes if c.key == k}
    if old:
        for c in plan.changes:  # keys we cannot touch now keep their backup, so rollback still restores them
            if c.action in (SKIP, HOST) and c.key in old.sysctl:
                journal[c.key] = old.sysctl[c.key]
    return journal


class SysctlRun:
    """One profile's apply: the keys to write, the persist file's content, the journals before and after."""

    def __init__(self, procsys: ProcSys, result: ApplyResult, old: Optional[State], final: State,
                 persist: PersistFile, content: Optional[str], mode: Optional[int]) -> None:
        self.procsys, self.result, self.old, self.final = procsys, result, old, final
        self.persist_now, self.content, self.mode = persist, content, mode
        self.nothing_to_do = result.nothing_to_do
        self.done: List[Change] = []

    def journal_first(self) -> State:
        """The journal before this run, with every original this run could change."""
        journal = self.old.copy() if self.old else State()
        journal.complete, journal.applying = False, self.result.plan.profile.name
        for c in self.result.plan.changes:
            if c.original is not None and c.target is not None and c.key not in journal.sysctl:
                journal.sysctl[c.key] = SysctlBackup(c.original, c.target)
        if not journal.persist_recorded:
            journal.persist_original, journal.persist_mode = self.final.persist_original, self.final.persist_mode
            journal.persist_recorded = True
        return journal

    def journals(self) -> List[Tuple[State, int]]:
        return [(self.final, 0), (self.journal_first(), 0)]

    def apply(self) -> None:
        for c in self.result.plan.writes():
            self.done.append(c)  # before the write: a value the kernel took but reads back oddly is undone too
            write_sysctl(self.procsys, c.key, c.target or "")
            _test_pause(c.key, len(self.done))

    def persist(self) -> None:
        put_persist(self.persist_now, self.content, self.mode)  # the original content when nothing is kept

    def undo(self, error: Exception, persisting: bool) -> Tuple[str, bool]:
        message = str(error) if isinstance(error, TuneError) else \
            f"cannot write {self.persist_now.path}: {os_error(error)}" if isinstance(error, OSError) else str(error)
        failed = []
        undone = 0
        for c in reversed(self.done):
            now = self.procsys.read(c.key)
            if now is not None and c.live is not None and same_value(now, c.live):
                continue  # the kernel refused the write (or never got it): nothing to undo
            try:
                write_sysctl(self.procsys, c.key, c.live or "")
                undone += 1
            except TuneError as e:
                failed.append(str(e))
        if failed:
            return f"{message}; undoing failed too ({failed[0]}): run `guestcheck tune rollback`", False
        return f"{message}; undid {undone} change(s) before it: the system is as it was", True

    def complete(self) -> State:
        self.result.written = self.result.plan.writes()
        return self.final


class SysctlUnit:
    name = "sysctl"
    label = "sysctl settings"

    def touched(self, state: State) -> bool:
        # an unfinished run is always this unit's business: its verify names the interrupted profile
        return bool(state.sysctl or state.persist_recorded or not state.complete)

    def plan(self, ctx: ApplyContext, old: Optional[State], request: SysctlRequest, dry_run: bool) -> SysctlRun:
        """The plan and the journals it would write. A journal too large for `rollback`, a persist file apply
        must not write, or a read-only /proc/sys is refused here (before even the lock file is made), unless
        `dry_run`: then it is a note that apply would refuse."""
        roots, procsys, profile = ctx.roots, ctx.procsys, request.profile
        ppath = persist_path(roots)
        now = inspect(ppath)
        refusal = now.refusal()
        if refusal and not dry_run:
            raise TuneError(f"{refusal}; nothing was changed")
        plan = plan_profile(profile, roots, old, procsys)
        journal = new_journal(plan, old)
        if old and old.persist_recorded:
            original, original_mode = old.persist_original, old.persist_mode
        else:
            original, original_mode = now.content, now.mode
        text = persist_text(profile, journal)
        content, mode = (text, PERSIST_MODE) if text is not None else (original, original_mode)
        result = ApplyResult(plan, ppath, content)
        if refusal:
            result.notes.append(f"apply would refuse: {refusal}")
        if in_initial_netns(roots) is False and journal:
            result.notes.append(f"{ppath} is read at boot in the host's own network namespace, not in this one")
        final = (old.copy() if old else State())
        final.profile, final.complete, final.sysctl = (profile.name if journal else None), True, journal
        final.applying, final.sizing = None, (request.sizing if journal else None)
        final.persist_original, final.persist_mode, final.persist_recorded = original, original_mode, True
        if not journal and not final.features and not final.channels and not final.rings and not final.links:
            final = State()
        run = SysctlRun(procsys, result, old, final, now, content, mode)
        writes = plan.writes()
        unchanged_state = (old.to_text() if old else State().to_text()) == final.to_text()
        if not writes and unchanged_state and persist_holds(now, content, mode):
            result.nothing_to_do = run.nothing_to_do = True
            return run
        try:
            for journal_state, slack in run.journals():  # both journals this run writes, before anything changes
                check_fits(journal_state, slack)
        except JournalTooLarge as e:
            if not dry_run:
                raise
            result.notes.append(f"apply would refuse: {e}")
        read_only = bool(writes) and procsys.mounted_read_only()
        if read_only and not dry_run:
            raise TuneError(f"{procsys.base} is mounted read-only (a container?): nothing was changed")
        if read_only:
            result.notes.append(f"{procsys.base} is mounted read-only (a container?): apply would refuse")
        if dry_run:
            result.written = writes
        return run

    def verify(self, roots: Roots, state: State) -> UnitVerification:
        v = verify_applied(roots, state)
        return UnitVerification(list(v.checks), list(v.problems), list(v.notes))

    def rollback_plan(self, ctx: RollbackContext) -> RollbackPlan:
        writes = SysctlWrites()
        plan = RollbackPlan(detail=writes)
        for key, backup in ctx.state.sysctl.items():
            live = ctx.procsys.read(key)
            if live is None:
                plan.notes.append(f"{key}: gone from this kernel, cannot restore {backup.original}")
            elif not same_value(live, backup.original):
                writes.keys.append((key, backup.original))
                plan.actions.append(f"{key}: {live} -> {backup.original}")
        writes.persist = persist_to_restore(ctx.roots, ctx.state, plan)
        plan.todo = bool(writes.keys or writes.persist)
        return plan

    def rollback(self, ctx: RollbackContext, plan: RollbackPlan, notes: List[str]) -> List[str]:
        writes: SysctlWrites = plan.detail
        if writes.keys and ctx.procsys.mounted_read_only():
            raise TuneError(f"{ctx.procsys.base} is mounted read-only (a container?): nothing was changed")
        errors = []
        for key, original in writes.keys:
            try:
                write_sysctl(ctx.procsys, key, original)
            except TuneError as e:
                errors.append(str(e))
        if writes.persist is not None:
            try:
                put_persist(writes.persist, ctx.state.persist_original, ctx.state.persist_mode)
            except OSError as e:
                errors.append(f"cannot write {writes.persist.path}: {os_error(e)}")
        return errors


@dataclass
class SysctlWrites:
    keys: List[Tuple[str, str]] = field(default_factory=list)  # (key, original) still to write back
    persist: Optional[PersistFile] = None  # the persist file as it is now, when it must be put back


def persist_to_restore(roots: Roots, state: State, plan: RollbackPlan) -> Optional[PersistFile]:
    """The persist file when it must be put back as it was, else None (and a note when it is left alone)."""
    if not state.persist_recorded:
        return None
    path = persist_path(roots)
    try:
        now = inspect(path)
    except TuneError as e:
        plan.notes.append(f"{e}: left as it is")
        return None
    if now.kind in (SYMLINK, MASKED):
        what = "masked (a symlink to /dev/null)" if now.kind == MASKED else f"a symlink to {now.target!r}"
        plan.notes.append(f"{path} is now {what}, not guestcheck's file: left as it is")
        return None
    if now.kind not in (FILE, ABSENT):
        plan.notes.append(f"{path} is not a regular file now: left as it is")
        return None
    if persist_holds(now, state.persist_original, state.persist_mode):
        return None
    verb = "remove" if state.persist_original is None else "restore"
    why = " (it held bytes that are not UTF-8)" if not now.utf8 else ""
    plan.actions.append(f"{verb} {path}{why}")
    return now
