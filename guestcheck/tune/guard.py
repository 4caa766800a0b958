"""The memory guard: large per-socket buffers are only safe when the VM's memory is really there.

A ballooned or overcommitted guest that grows every TCP socket to 16 MiB can be pushed into reclaim
or the OOM killer when the host takes memory back. The verdict comes from doctor's memory check
(`guestcheck.checks.memory.memory_verdict(facts)`), imported only when a guarded profile is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

from guestcheck.tune.profile import Guards

MIB = 1024 * 1024


@dataclass
class GuardResult:
    allowed: bool
    reasons: List[str] = field(default_factory=list)  # why refused (or what was checked when allowed)


def default_verdict(facts: Any) -> Any:
    """doctor's memory verdict: `.guaranteed` (True/False/None) and `.reasons` (list of str)."""
    from guestcheck.checks.memory import memory_verdict

    return memory_verdict(facts)


def total_ram_bytes(facts: Any, verdict: Any) -> Optional[int]:
    """Usable RAM: the verdict's (MemTotal capped by a cgroup or container limit), else MemTotal."""
    for total in (getattr(verdict, "total_bytes", None), getattr(getattr(facts, "memory", None), "total_bytes", None)):
        if isinstance(total, int) and not isinstance(total, bool):
            return total
    return None


def check(guards: Guards, facts: Any, verdict_of: Callable[[Any], Any] = default_verdict) -> GuardResult:
    """Allowed when every guard the profile declares is met; otherwise the reasons why not."""
    refusals: List[str] = []
    checked: List[str] = []
    if not guards.requires_guaranteed_memory and guards.min_ram_mb is None:
        return GuardResult(True)
    try:
        verdict = verdict_of(facts)
    except ImportError:
        verdict = None
    if guards.requires_guaranteed_memory:
        guaranteed = getattr(verdict, "guaranteed", None)
        why = "; ".join(str(r) for r in getattr(verdict, "reasons", None) or []) or "no details"
        if verdict is None:
            refusals.append("memory guarantee unknown: this guestcheck has no memory check")
        elif guaranteed is False:
            refusals.append(f"memory is not guaranteed ({why})")
        elif guaranteed is None:
            refusals.append(f"memory guarantee could not be confirmed ({why})")
        else:
            checked.append("memory is guaranteed" + (f" ({why})" if why != "no details" else ""))
    if guards.min_ram_mb is not None:
        total = total_ram_bytes(facts, verdict)
        if total is None:
            refusals.append(f"RAM unknown, the profile needs at least {guards.min_ram_mb} MiB")
        elif total < guards.min_ram_mb * MIB:
            refusals.append(f"RAM is {total // MIB} MiB, below the profile's minimum of {guards.min_ram_mb} MiB")
        else:
            checked.append(f"RAM {total // MIB} MiB >= {guards.min_ram_mb} MiB")
    return GuardResult(not refusals, refusals or checked)
