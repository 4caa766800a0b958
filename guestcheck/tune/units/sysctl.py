"""The sysctl unit: profiles written to /proc/sys and /etc/sysctl.d/90-guestcheck.conf. Its plan, apply,
verify and rollback are plan.py, apply.py (apply_profile, and the sysctl part of rollback) and verify.py,
wrapped here as they are."""

from __future__ import annotations

from typing import Optional

from guestcheck.roots import Roots
from guestcheck.tune.state import State
from guestcheck.tune.units.base import Check, UnitVerification


class SysctlUnit:
    name = "sysctl"

    def touched(self, state: State) -> bool:
        return bool(state.sysctl or state.persist_recorded)

    def plan(self, profile, roots: Roots, state: Optional[State]):  # type: ignore[no-untyped-def]
        from guestcheck.tune.plan import plan_profile

        return plan_profile(profile, roots, state)

    def apply(self, profile, roots: Roots, dry_run: bool = False):  # type: ignore[no-untyped-def]
        from guestcheck.tune.apply import apply_profile

        return apply_profile(profile, roots, dry_run=dry_run)

    def verify(self, roots: Roots, state: State) -> UnitVerification:
        from guestcheck.tune.verify import verify_applied

        v = verify_applied(roots, state)
        return UnitVerification([Check(c.key, c.expected, c.live, c.ok, c.note) for c in v.checks],
                                list(v.problems), list(v.notes))
