"""The diff between a profile and the live kernel: what apply would write, keep, skip or leave to the host.

Planning is pure given what ProcSys reads. The baseline of every key is its ORIGINAL value (from the
journal when guestcheck already changed it, else the live one), so applying B over A gives the same
machine as rolling back A and applying B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from guestcheck.collect.kernel import in_initial_netns
from guestcheck.quantities import int_fields
from guestcheck.roots import Roots
from guestcheck.text import escape_control
from guestcheck.tune.journal import State
from guestcheck.tune.live import ProcSys, choice_missing
from guestcheck.tune.profile import Profile, Setting, normalise_value

SET, KEEP, RESTORE, SKIP, HOST = "set", "keep", "restore", "skip", "host"


@dataclass
class Change:
    key: str
    action: str  # set | keep | restore | skip | host
    live: Optional[str]  # what the kernel has now (None: no such key)
    target: Optional[str]  # what the key will hold after apply
    original: Optional[str]  # what it held before guestcheck touched it
    wanted: str = ""  # the profile's value, ">" dropped
    raise_only: bool = False
    reason: str = ""
    note: str = ""
    source: str = ""

    @property
    def writes(self) -> bool:
        return self.action in (SET, RESTORE)


@dataclass
class Plan:
    profile: Profile
    changes: List[Change] = field(default_factory=list)
    initial_netns: Optional[bool] = None

    def writes(self) -> List[Change]:
        return [c for c in self.changes if c.writes]

    def of(self, action: str) -> List[Change]:
        return [c for c in self.changes if c.action == action]

    def backups(self) -> Dict[str, str]:
        """key -> original for every key that differs from its original after apply: the new journal."""
        return {c.key: c.original for c in self.changes
                if c.action in (SET, KEEP) and c.original is not None and c.target is not None
                and c.original != c.target}


def raise_only(baseline: str, wanted: str) -> str:
    """Each field the larger of the two; a kernel value already higher is never lowered."""
    have, want = baseline.split(), wanted.split()
    try:
        if len(have) != len(want):
            return wanted
        return " ".join(str(max(h, w)) for h, w in zip(int_fields(baseline), int_fields(wanted)))
    except ValueError:
        return wanted


def _classify(setting: Setting, procsys: ProcSys, roots: Roots, initial: Optional[bool]) -> Optional[Change]:
    """A skip/host Change when the key cannot be written here, else None."""
    key = setting.key
    live = procsys.read(key)
    base = Change(key, SKIP, live, None, live, setting.value, setting.raise_only, setting.reason,
                  source=setting.source)
    if initial is False and not key.startswith("net."):
        base.action, base.note = HOST, "host-wide key: writing it from a network namespace would change the host"
    elif live is None:
        if initial is False:
            base.action, base.note = HOST, "not in this network namespace (host-wide or absent): left to the host"
        else:
            base.note = "this kernel has no such key"
    elif not procsys.writable(key):
        if initial is False:
            base.action, base.note = HOST, "host-wide key, read-only in this network namespace: left to the host"
        else:
            base.note = "read-only on this kernel"
    else:
        missing = choice_missing(roots, procsys, key, setting.value)
        if missing is None:
            return None
        base.note = missing
    return base


def plan_profile(profile: Profile, roots: Roots, state: Optional[State] = None,
                 procsys: Optional[ProcSys] = None) -> Plan:
    procsys = procsys or ProcSys(roots)
    journal = state.sysctl if state else {}
    initial = in_initial_netns(roots)
    plan = Plan(profile, initial_netns=initial)
    for key, setting in profile.settings.items():
        blocked = _classify(setting, procsys, roots, initial)
        if blocked is not None:
            plan.changes.append(blocked)
            continue
        live = procsys.read(key) or ""
        original = journal[key].original if key in journal else live
        target = raise_only(original, setting.value) if setting.raise_only else setting.value
        change = Change(key, SET, live, target, original, setting.value, setting.raise_only, setting.reason,
                        source=setting.source)
        if normalise_value(target) == live:
            change.action = KEEP
            if setting.raise_only and target != setting.value:
                change.note = f"raise-only: the kernel's {live} is already at least {setting.value}"
            else:
                change.note = "already set"
        plan.changes.append(change)
    for key, backup in journal.items():
        if key in profile.settings:
            continue
        live = procsys.read(key)
        if live is None:
            plan.changes.append(Change(key, SKIP, None, None, backup.original,
                                       note="set by the previous profile, now gone from the kernel"))
            continue
        action = KEEP if live == backup.original else RESTORE
        previous = escape_control(state.profile or "?") if state else "?"
        plan.changes.append(Change(key, action, live, backup.original, backup.original,
                                   note=f"set by the previous profile ({previous}); back to the original"))
    return plan
