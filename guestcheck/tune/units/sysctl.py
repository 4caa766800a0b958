"""The sysctl unit: profile keys written to /proc/sys and persisted in /etc/sysctl.d/90-guestcheck.conf.
Its plan and apply are plan.py and apply.py (apply_profile, which takes a profile); its verify is verify.py;
its rollback is here: every key back to its original value, then the persist file as it was."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune.persist import ABSENT, FILE, MASKED, SYMLINK, PersistFile, inspect
from guestcheck.tune.state import State, persist_path
from guestcheck.tune.units.base import RollbackContext, RollbackPlan, UnitVerification


@dataclass
class SysctlWrites:
    keys: List[Tuple[str, str]] = field(default_factory=list)  # (key, original) still to write back
    persist: Optional[PersistFile] = None  # the persist file as it is now, when it must be put back


class SysctlUnit:
    name = "sysctl"
    label = "sysctl settings"

    def touched(self, state: State) -> bool:
        # an unfinished run is always this unit's business: its verify names the interrupted profile
        return bool(state.sysctl or state.persist_recorded or not state.complete)

    def plan(self, profile, roots: Roots, state: Optional[State]):  # type: ignore[no-untyped-def]
        from guestcheck.tune.plan import plan_profile

        return plan_profile(profile, roots, state)

    def apply(self, profile, roots: Roots, dry_run: bool = False):  # type: ignore[no-untyped-def]
        from guestcheck.tune.apply import apply_profile

        return apply_profile(profile, roots, dry_run=dry_run)

    def verify(self, roots: Roots, state: State) -> UnitVerification:
        from guestcheck.tune.verify import verify_applied

        v = verify_applied(roots, state)
        return UnitVerification(list(v.checks), list(v.problems), list(v.notes))

    def rollback_plan(self, ctx: RollbackContext) -> RollbackPlan:
        from guestcheck.tune.apply import same_value

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
        from guestcheck.tune.apply import os_error, put_persist, write_sysctl

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


def persist_to_restore(roots: Roots, state: State, plan: RollbackPlan) -> Optional[PersistFile]:
    """The persist file when it must be put back as it was, else None (and a note when it is left alone)."""
    from guestcheck.tune.apply import persist_holds

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
