"""The only code that changes the machine: /proc/sys, the persist file, the journal, NIC features and channels.

Every run follows one order, so a crash at any point can be rolled back:
  1. the journal (original values of everything about to change) is written, atomically, first;
  2. the live values are written one by one, each read back;
  3. the persist file /etc/sysctl.d/90-guestcheck.conf is written atomically;
  4. the journal is rewritten as complete.
A failure in 2 or 3 undoes this run's writes and puts the journal back as it was. `rollback` writes
every original value back, restores the persist file and NIC settings, and deletes the journal last,
so an interrupted rollback can simply be run again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, TypeVar

from guestcheck.atomicfile import write_atomic
from guestcheck.quantities import int_fields, maybe_int
from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune.ethtool_set import EthtoolWriter
from guestcheck.tune.live import ProcSys, boot_id, in_initial_netns
from guestcheck.tune.persist import ABSENT, FILE, PersistFile, encode, inspect, render
from guestcheck.tune.plan import HOST, SKIP, Change, Plan, plan_profile
from guestcheck.tune.profile import Profile, normalise_value
from guestcheck.tune.state import (
    JournalTooLarge,
    SizingRecord,
    State,
    SysctlBackup,
    check_fits,
    load_state,
    lock_path,
    persist_path,
    state_path,
)

PAUSE_ENV = "GUESTCHECK_TEST_PAUSE_AFTER_WRITE"  # test-only: "N" pauses 60 s after the N-th /proc/sys write


# --- files -----------------------------------------------------------------------------------------

def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    _fsync_dir(os.path.dirname(path) or ".")


PERSIST_MODE = 0o644


def persist_holds(now: PersistFile, content: Optional[str], mode: Optional[int]) -> bool:
    """Whether the persist file is already `content` (None: absent) with `mode` (None: any mode)."""
    if content is None:
        return now.kind == ABSENT
    return now.kind == FILE and now.content == content and (mode is None or now.mode == mode)


def put_persist(now: PersistFile, content: Optional[str], mode: Optional[int]) -> None:
    """Make the persist file (a regular file or absent, never a link: callers check) hold `content`, its
    bytes exactly, with `mode` (None: 0644), or remove it when `content` is None."""
    if persist_holds(now, content, mode):
        return
    if content is None:
        remove(now.path)
    else:
        write_atomic(now.path, encode(content), mode=PERSIST_MODE if mode is None else mode)


def save_state(roots: Roots, state: Optional[State]) -> None:
    """Write the journal (atomically), or remove it when it holds nothing. Never one that `rollback` could not
    read: callers check that with check_fits before they change anything, this is the last guard."""
    if state is None or state.empty():
        remove(state_path(roots))
    else:
        check_fits(state, consequence="not written")
        write_atomic(state_path(roots), state.to_text(), mode=0o600)


def _open_lock(path: str) -> int:
    """The lock file, a regular file: never followed through a link, never waited on (a FIFO)."""
    not_regular = f"the lock {path} is not a regular file: remove it and run again; nothing was changed"
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise TuneError(not_regular)  # refused before it is opened: opening a device may do something
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise TuneError(not_regular) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TuneError(not_regular)
    return fd


@contextlib.contextmanager
def locked(roots: Roots) -> Iterator[None]:
    """One tuner at a time on a machine (per journal); taken before the journal is read."""
    path = lock_path(roots)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TuneError(f"another `guestcheck tune` is running (lock {path})") from None
        yield
    finally:
        os.close(fd)


def os_error(e: OSError) -> str:
    return e.strerror or errno.errorcode.get(e.errno or 0, str(e))


# --- /proc/sys -------------------------------------------------------------------------------------

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


# --- profiles ----------------------------------------------------------------------------------------

@dataclass
class ApplyResult:
    plan: Plan
    persist_path: str
    persist_text: Optional[str]  # the file's content after apply (None: no file)
    written: List[Change] = field(default_factory=list)
    nothing_to_do: bool = False
    notes: List[str] = field(default_factory=list)


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


def apply_profile(profile: Profile, roots: Roots, *, dry_run: bool = False,
                  procsys: Optional[ProcSys] = None, sizing: Optional[SizingRecord] = None) -> ApplyResult:
    """Apply `profile` (already sized to the path when `sizing` says how: it is journaled with the values)."""
    procsys = procsys or ProcSys(roots)
    if dry_run:
        return _apply_profile(profile, roots, procsys, dry_run=True, sizing=sizing)
    refusal = inspect(persist_path(roots)).refusal()  # before the lock: a refused apply creates nothing
    if refusal:
        raise TuneError(f"{refusal}; nothing was changed")
    return _under_lock(roots, lambda dry: _apply_profile(profile, roots, procsys, dry_run=dry, sizing=sizing,
                                                         refuse=True),
                       lambda r: r.nothing_to_do, "nothing was changed")


R = TypeVar("R")


def _under_lock(roots: Roots, run: Callable[[bool], R], idle: Callable[[R], bool], consequence: str) -> R:
    """run(dry_run=False) with the lock taken before the journal is read. Where no tuner has run yet (no lock
    file), a dry pass comes first, so a run with nothing to do creates nothing, not even the lock file; all
    that is written is still decided from a journal read under the lock."""
    if not os.path.lexists(lock_path(roots)):
        probe = run(True)
        if idle(probe):
            return probe
    with io_errors(consequence), locked(roots):
        return run(False)


def _apply_profile(profile: Profile, roots: Roots, procsys: ProcSys, *, dry_run: bool,
                   sizing: Optional[SizingRecord] = None, refuse: bool = False) -> ApplyResult:
    """The plan and, unless `dry_run`, the writes. A journal too large for `rollback` is refused before anything
    changes, in the probe pass too (`refuse`: before even the lock file is made); `--dry-run` says it would be."""
    old = load_state(roots)
    plan = plan_profile(profile, roots, old, procsys)
    journal = new_journal(plan, old)
    ppath = persist_path(roots)
    now = inspect(ppath)
    if old and old.persist_recorded:
        original, original_mode = old.persist_original, old.persist_mode
    else:
        original, original_mode = now.content, now.mode
    text = persist_text(profile, journal)
    content, mode = (text, PERSIST_MODE) if text is not None else (original, original_mode)
    result = ApplyResult(plan, ppath, content)
    refusal = now.refusal()
    if refusal and not dry_run:
        raise TuneError(f"{refusal}; nothing was changed")
    if refusal:
        result.notes.append(f"apply would refuse: {refusal}")
    if in_initial_netns(roots) is False and journal:
        result.notes.append(f"{ppath} is read at boot in the host's own network namespace, not in this one")
    final = (old.copy() if old else State())
    final.profile, final.complete, final.sysctl = (profile.name if journal else None), True, journal
    final.applying, final.sizing = None, (sizing if journal else None)
    final.persist_original, final.persist_mode, final.persist_recorded = original, original_mode, True
    if not journal and not final.features and not final.channels and not final.rings and not final.links:
        final = State()
    writes = plan.writes()
    unchanged_state = (old.to_text() if old else State().to_text()) == final.to_text()
    if not writes and unchanged_state and persist_holds(now, content, mode):
        result.nothing_to_do = True
        return result
    try:
        check_fits(final)  # both journals this run writes, before anything changes
        check_fits(_in_progress(plan, old, final))
    except JournalTooLarge as e:
        if refuse or not dry_run:
            raise
        result.notes.append(f"apply would refuse: {e}")
    read_only = bool(writes) and procsys.mounted_read_only()
    if read_only and dry_run:
        result.notes.append(f"{procsys.base} is mounted read-only (a container?): apply would refuse")
    if dry_run:
        result.written = writes
        return result
    if read_only:
        raise TuneError(f"{procsys.base} is mounted read-only (a container?): nothing was changed")
    _run_apply(roots, procsys, plan, old, final, now, content, mode)
    result.written = writes
    return result


@contextlib.contextmanager
def io_errors(consequence: str) -> Iterator[None]:
    """A file the tuner could not write (read-only /etc, full disk) becomes one clear line."""
    try:
        yield
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise TuneError(f"cannot write{where}: {os_error(e)}; {consequence}") from None


def _in_progress(plan: Plan, old: Optional[State], final: State) -> State:
    """The journal written first: the one before this run, with every original this run could change."""
    journal = old.copy() if old else State()
    journal.complete, journal.applying = False, plan.profile.name
    for c in plan.changes:
        if c.original is not None and c.target is not None and c.key not in journal.sysctl:
            journal.sysctl[c.key] = SysctlBackup(c.original, c.target)
    if not journal.persist_recorded:
        journal.persist_original, journal.persist_mode = final.persist_original, final.persist_mode
        journal.persist_recorded = True
    return journal


def _run_apply(roots: Roots, procsys: ProcSys, plan: Plan, old: Optional[State], final: State,
               persist: PersistFile, content: Optional[str], mode: Optional[int]) -> None:
    journal = _in_progress(plan, old, final)
    save_state(roots, journal)  # 1. the journal, before anything changes
    done: List[Change] = []
    try:
        for c in plan.writes():  # 2. live values
            done.append(c)  # before the write: a value the kernel took but reads back oddly is undone too
            write_sysctl(procsys, c.key, c.target or "")
            _test_pause(c.key, len(done))
        put_persist(persist, content, mode)  # 3. persist (the original content when nothing is kept)
    except (TuneError, OSError) as e:
        message = str(e) if isinstance(e, TuneError) else f"cannot write {persist.path}: {os_error(e)}"
        _undo(roots, procsys, done, old, message)
    try:
        save_state(roots, final)  # 4. complete
    except OSError as e:
        raise TuneError(f"applied, but the journal could not be marked complete ({os_error(e)}); "
                        "`guestcheck tune rollback` still restores the original values") from None


def _undo(roots: Roots, procsys: ProcSys, done: List[Change], old: Optional[State], message: str) -> None:
    failed = []
    undone = 0
    for c in reversed(done):
        now = procsys.read(c.key)
        if now is not None and c.live is not None and same_value(now, c.live):
            continue  # the kernel refused the write (or never got it): nothing to undo
        try:
            write_sysctl(procsys, c.key, c.live or "")
            undone += 1
        except TuneError as e:
            failed.append(str(e))
    if failed:
        raise TuneError(f"{message}; undoing failed too ({failed[0]}): run `guestcheck tune rollback`")
    save_state(roots, old)
    raise TuneError(f"{message}; undid {undone} change(s) before it: the system is as it was")


# --- rollback ----------------------------------------------------------------------------------------

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
    return _under_lock(roots, lambda dry: _rollback(roots, procsys, ethtool, dry_run=dry, leave=set(leave)),
                       lambda r: r.nothing_to_do, "run rollback again")


def _rollback(roots: Roots, procsys: ProcSys, ethtool: Optional[EthtoolWriter], *, dry_run: bool,
              leave: Set[str]) -> RollbackResult:
    """Each unit the journal touches plans its rollback (sysctl keys first, the .link files last), then each
    carries its plan out; the journal goes last, so an interrupted rollback can be run again. Every tuned NIC
    is found by its identity first: a different device that took a tuned name refuses the whole rollback."""
    from guestcheck.tune.units import UNITS
    from guestcheck.tune.units.base import RollbackContext

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


def _locate_nics(ctx: Any) -> Dict[str, Any]:
    """Journal name -> identity.Located for every NIC whose live values rollback would write; TuneError (nothing
    written yet) when a different device has taken the name of one that is not here."""
    from guestcheck.tune.identity import locate
    from guestcheck.tune.units import NIC_UNITS

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


# --- offloads, queues and rings: the NIC units (guestcheck/tune/units/) ---------------------------------

from guestcheck.tune.units.channels import apply_queues, queue_target  # noqa: E402
from guestcheck.tune.units.features import apply_offloads  # noqa: E402
from guestcheck.tune.units.nic import NicResult  # noqa: E402
from guestcheck.tune.units.rings import apply_rings  # noqa: E402
from guestcheck.tune.units.rps import apply_rps  # noqa: E402

__all__ = ["NicResult", "apply_offloads", "apply_queues", "apply_rings", "apply_rps", "queue_target"]
