"""Before `tune` changes a setting: who else owns it, and whether that agent would put its own value back.

The answer comes from the judge's `other_owners` (one table for doctor and tune), on facts the agents'
collector reads under the tuner's roots (so `tune --root DIR` reads DIR/etc/tuned, DIR/run/NetworkManager).
An agent that restores its value over ours (a TuneD profile setting the same sysctl key: at every TuneD start,
after the sysctl.d files; irqbalance against IRQ affinity or RPS: every 10 s) makes `tune` refuse without
--force, unless the change is out of its reach (an RPS mask over every online CPU); the others are warnings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from guestcheck.quantities import int_fields
from guestcheck.roots import Roots
from guestcheck.tune import TuneError

if TYPE_CHECKING:
    from guestcheck.judge.owners import Owner


def _same_or_higher(theirs: Optional[str], ours: str, raise_only: bool) -> bool:
    """Their value is ours (or, for a raise-only key, at least ours field by field): no fight."""
    if theirs is None:
        return False
    a, b = theirs.split(), ours.split()
    if a == b:
        return True
    try:
        x, y = int_fields(theirs), int_fields(ours)
        return raise_only and len(x) == len(y) and all(p >= q for p, q in zip(x, y))
    except ValueError:
        return False


def guard(roots: Roots, settings: Dict[str, Optional[str]], *, iface: Optional[str] = None, force: bool = False,
          dry_run: bool = False, raise_only: Optional[Dict[str, bool]] = None,
          unaffected: Optional[Callable[[Owner], Optional[str]]] = None) -> List[str]:
    """Lines to print before the change; raises TuneError when an owner would undo it and neither --force nor
    --dry-run is given. `settings`: "sysctl:KEY" (with the value we would write), "irq", "rps", "channels", ...
    `unaffected(owner)`: why this change is out of that owner's reach (an RPS mask over every CPU, which
    irqbalance's moves cannot leave behind), or None."""
    from guestcheck.collect.agents import collect_agents
    from guestcheck.judge.owners import other_owners

    agents = collect_agents(roots)
    lines: List[str] = []
    refuse: List[str] = []
    for setting, ours in settings.items():
        for owner in other_owners(agents, setting, iface):
            what = setting.split(":", 1)[-1]
            harmless = ours is not None and _same_or_higher(owner.value, ours, (raise_only or {}).get(what, False))
            spared = unaffected(owner) if unaffected is not None else None
            if owner.puts_back and not harmless and not spared:
                refuse.append(f"{what}: {owner.line()}")
            else:
                why = " (same value)" if harmless else (f" ({spared})" if spared else "")
                lines.append(f"also managed: {what}: {owner.line()}{why}")
    if refuse and not (force or dry_run):
        raise TuneError(f"refusing: another agent would put its own value back ({refuse[0]}"
                        + (f"; and {len(refuse) - 1} more" if len(refuse) > 1 else "")
                        + "); change it there, or --force to apply anyway; nothing was changed")
    verb = "overridden by --force" if force else "apply would refuse without --force"
    return [f"{verb}: {line}" for line in refuse] + lines
