"""Is the tuning still in force: live values, the persist file, and who wins at boot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from guestcheck.quantities import int_fields
from guestcheck.roots import Roots
from guestcheck.text import escape_control
from guestcheck.tune import TuneError
from guestcheck.tune.conflicts import describe, find_conflicts, parse_sysctl_d
from guestcheck.tune.journal import State, persist_path
from guestcheck.tune.live import ProcSys
from guestcheck.tune.persist import ABSENT, FILE, MASKED, OTHER, PersistFile, inspect
from guestcheck.tune.plan import HOST, SKIP, plan_profile
from guestcheck.tune.profile import Profile
from guestcheck.tune.sizing import sized_profile


@dataclass
class Check:
    key: str
    expected: str
    live: Optional[str]
    ok: bool
    note: str = ""


@dataclass
class Verification:
    subject: str  # the profile checked, or what the journal says was applied
    checks: List[Check] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # persist file, boot order, interrupted runs
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.problems


def at_least(live: str, wanted: str) -> bool:
    try:
        have, want = int_fields(live), int_fields(wanted)
        return len(have) == len(want) and all(h >= w for h, w in zip(have, want))
    except ValueError:
        return False


def verify_profile(profile: Profile, roots: Roots, state: Optional[State],
                   procsys: Optional[ProcSys] = None) -> Verification:
    """Does the live kernel hold what `profile` asks for (raise-only keys: at least that much)?"""
    procsys = procsys or ProcSys(roots)
    out = Verification(profile.name)
    if state and state.profile == profile.name and state.sizing:  # check what was applied, not the static file
        profile = sized_as_applied(profile, state, procsys)
        out.notes.append(f"buffers were {state.sizing.summary}")
    plan = plan_profile(profile, roots, state, procsys)
    for c in plan.changes:
        if c.key not in profile.settings:
            continue
        if c.action in (SKIP, HOST):
            out.notes.append(f"{c.key}: not checked, {c.note}")
            continue
        live = c.live or ""
        ok = at_least(live, c.wanted) if c.raise_only else live == c.wanted
        out.checks.append(Check(c.key, (">" if c.raise_only else "") + c.wanted, live, ok))
    if state and state.profile == profile.name:
        _check_persisted(out, roots, state, procsys)
    elif state and not state.complete:
        out.problems.extend(interrupted_run(state, procsys))
    elif out.checks:
        out.notes.append("this profile is not the one guestcheck applied: its persist file was not checked")
    return out


def sized_as_applied(profile: Profile, state: State, procsys: ProcSys) -> Profile:
    """The profile as a path-sized apply made it: the journaled ceiling in place of the profile's."""
    assert state.sizing is not None
    journal = state.sysctl
    return sized_profile(profile, state.sizing.ceiling_bytes, state.sizing.summary,
                         lambda key: journal[key].original if key in journal else procsys.read(key))


def interrupted_run(state: State, procsys: ProcSys) -> List[str]:
    """Problems of an apply that never finished: which profile, and which of its keys were never written."""
    if state.complete:
        return []
    name = escape_control(state.applying) if state.applying else "a profile"
    unwritten = never_written(state, procsys)
    lines = [f"the apply of {name} was interrupted: run `guestcheck tune apply {name}` again "
             "or `guestcheck tune rollback`"]
    if unwritten:
        lines.append(f"never written (still at their original values): {', '.join(unwritten)}")
    return lines


def never_written(state: State, procsys: ProcSys) -> List[str]:
    """Keys an unfinished apply meant to change that still hold their original value."""
    if state.complete:
        return []
    return [key for key, b in state.sysctl.items() if b.original != b.applied and procsys.read(key) == b.original]


def subject_of(state: State, nic_labels: Sequence[str] = ()) -> str:
    """What the journal says guestcheck applied, named for humans; `nic_labels` names the NIC settings it
    holds ("offloads", "rings"), which only the NIC units can tell."""
    if not state.complete and state.applying:
        return f"{escape_control(state.applying)} (interrupted)"
    if state.profile:
        return escape_control(state.profile)
    if nic_labels:
        return "/".join(nic_labels)
    return "sysctl settings" if state.sysctl else "nothing"


def verify_applied(roots: Roots, state: Optional[State], procsys: Optional[ProcSys] = None) -> Verification:
    """Does the live kernel still hold what guestcheck applied last?"""
    procsys = procsys or ProcSys(roots)
    if state is None:
        out = Verification("nothing")
        out.notes.append("guestcheck has changed nothing here")
        return out
    out = Verification(subject_of(state))
    unwritten = set(never_written(state, procsys))
    for key, backup in state.sysctl.items():
        live = procsys.read(key)
        if live == backup.applied:
            note = ""
        elif key in unwritten:
            note = "never written: the apply was interrupted before it"
        else:
            note = f"changed since apply (original {backup.original})"
        out.checks.append(Check(key, backup.applied, live, live == backup.applied, note))
    if state.sizing and state.complete:
        out.notes.append(f"buffers were {state.sizing.summary}")
    _check_persisted(out, roots, state, procsys)
    return out


def _check_persisted(out: Verification, roots: Roots, state: State, procsys: ProcSys) -> None:
    out.problems.extend(interrupted_run(state, procsys))
    path = persist_path(roots)
    try:
        now = inspect(path)
    except TuneError as e:
        now = PersistFile(path, OTHER)
        out.problems.append(str(e))
    persisted: Dict[str, str] = {}
    if now.kind == FILE and now.content is not None:
        persisted = {k: v for k, v, _ in parse_sysctl_d(now.content)}
        if not now.utf8:
            out.problems.append(f"{path} holds bytes that are not UTF-8 (edited since apply?)")
    elif state.sysctl:
        why = {ABSENT: "is missing", MASKED: "is masked (a symlink to /dev/null)"}.get(now.kind, "is not guestcheck's "
                                                                                              "regular file")
        out.problems.append(f"{path} {why}: the values will not survive a reboot")
    for key, backup in state.sysctl.items():
        if persisted and persisted.get(key) != backup.applied:
            out.problems.append(f"{path} does not set {key} = {backup.applied}")
    for conflict in find_conflicts({k: b.applied for k, b in state.sysctl.items()}, roots):
        if conflict.winner is not None and conflict.winner.value != conflict.ours:
            out.problems.extend(describe(conflict)[-1:])
        else:
            out.notes.extend(describe(conflict)[-1:])
