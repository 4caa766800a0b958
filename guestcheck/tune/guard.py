"""The memory guard: large per-socket buffers are only safe when the VM's memory is really there.

A ballooned or overcommitted guest that grows every TCP socket to 16 MiB can be pushed into reclaim
or the OOM killer when the host takes memory back. The verdict is doctor's memory verdict, given by
the service layer (service.py's FactsSource.verdict_of: the judge's, judged once per run).
The guard is proportionate (README "Guards"): nothing raised is never refused; an idle or deflate-on-oom
virtio-balloon on 2 GiB or more, outside a container, allows per-socket ceilings up to 1/64 of MemTotal; and a
ceiling sized to the path is held to its share of the RAM, not to the profile's min_ram_mb (a "1 GiB" guest shows
a MemTotal of about 960 MiB, and its path-sized ceiling of a few MB is no more a risk there than on 2 GiB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterable, List, Optional, Tuple

from guestcheck.quantities import maybe_int
from guestcheck.tune.profile import Guards

MIB = 1024 * 1024
GIB = 1024 * MIB
# An idle or deflate-on-oom balloon: the host can take memory back but holds none now, or gives it back under
# pressure. Per-socket ceilings up to this share of MemTotal are allowed without --force (384 MiB on 24 GiB).
IDLE_BALLOON_SHARE = Fraction(1, 64)
IDLE_BALLOON_MIN_RAM = 2 * GIB  # below this, a balloon keeps today's refusal whatever it holds


@dataclass
class GuardResult:
    allowed: bool
    reasons: List[str] = field(default_factory=list)  # why refused (or what was checked when allowed)
    bounded: bool = False  # allowed although memory is not guaranteed: an idle balloon's bounded allowance
    sized_below_min_ram: bool = False  # allowed below min_ram_mb: a ceiling sized to the path, within its share


@dataclass(frozen=True)
class Bounded:
    """The allowance an idle or deflate-on-oom balloon gives: per-socket ceilings up to limit_bytes."""

    mem_total_bytes: int
    evidence: List[str]  # the verdict's reasons that allowed it (each an idle or deflate-on-oom balloon)

    @property
    def limit_bytes(self) -> int:
        return int(self.mem_total_bytes * IDLE_BALLOON_SHARE)

    def text(self) -> str:
        return (f"{'; '.join(self.evidence)}: per-socket ceilings up to {self.limit_bytes} bytes "
                f"({IDLE_BALLOON_SHARE} of MemTotal {_gib(self.mem_total_bytes)}) are allowed")


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n // MIB} MiB"


def total_ram_bytes(facts: Any, verdict: Any) -> Optional[int]:
    """Usable RAM: the verdict's (MemTotal capped by a cgroup or container limit), else MemTotal."""
    for total in (getattr(verdict, "total_bytes", None), getattr(getattr(facts, "memory", None), "total_bytes", None)):
        if isinstance(total, int) and not isinstance(total, bool):
            return total
    return None


def bounded_allowance(facts: Any, verdict: Any) -> Optional[Bounded]:
    """The idle-balloon allowance, or None where today's refusal stands: memory guaranteed (no need), a balloon
    holding memory now, anything else that can take memory back (a cgroup limit, virtio-mem, an unknown
    platform), MemTotal under 2 GiB, or a container (OpenVZ included)."""
    if verdict is None or getattr(verdict, "guaranteed", None) is not False:
        return None
    if not getattr(verdict, "only_idle_balloons", False):
        return None
    mem_total = getattr(verdict, "mem_total_bytes", None)
    if not isinstance(mem_total, int) or isinstance(mem_total, bool) or mem_total < IDLE_BALLOON_MIN_RAM:
        return None
    if getattr(getattr(facts, "virt", None), "container", None):
        return None
    if getattr(getattr(facts, "memory", None), "beancounters", None) is not None:  # OpenVZ, whatever virt says
        return None
    return Bounded(mem_total, list(getattr(verdict, "idle_balloons", [])))


def raised_ceiling(rows: Iterable[Tuple[str, Optional[str], Optional[str]]]) -> int:
    """The highest per-socket buffer ceiling that (key, value in force, value to write) rows raise above the
    value in force; 0 when none rises (then nothing grows, and there is no memory risk to refuse). A value in
    force that cannot be read as numbers counts as raised."""
    from guestcheck.tune.sizing import SIZED_KEYS

    highest = 0
    for key, live, target in rows:
        if key not in SIZED_KEYS or target is None:
            continue
        index = SIZED_KEYS[key]
        wanted = _field(target, index)
        if wanted is None:
            continue
        have = _field(live or "", index)
        if have is None or wanted > have:
            highest = max(highest, wanted)
    return highest


def _field(value: str, index: int) -> Optional[int]:
    fields = value.lstrip(">").split()
    return maybe_int(fields[index]) if len(fields) > index else None  # ASCII digits only (quantities)


def check(guards: Guards, facts: Any, verdict_of: Callable[[Any], Any], ceiling: Optional[int] = None,
          sized: bool = False) -> GuardResult:
    """Allowed when every guard the profile declares is met; otherwise the reasons why not. `verdict_of(facts)`
    is doctor's memory verdict: `.guaranteed` (True/False/None) and `.reasons` (list of str).

    `ceiling` is the highest per-socket buffer ceiling the apply raises above the value in force
    (`raised_ceiling`): 0 means nothing grows, which is never refused; None means not known (no bounded
    allowance then). `sized`: the ceilings are sized to the path, so bounded by a share of the RAM
    (`buffer_share`); below `min_ram_mb`, a ceiling within that share is allowed, and the result says so."""
    refusals: List[str] = []
    checked: List[str] = []
    bounded = below = False
    if not guards.requires_guaranteed_memory and guards.min_ram_mb is None:
        return GuardResult(True)
    if ceiling == 0:
        return GuardResult(True, ["no buffer ceiling rises above the value in force: nothing to guard"])
    try:
        verdict = verdict_of(facts)
    except ImportError:
        verdict = None
    if guards.requires_guaranteed_memory:
        guaranteed = getattr(verdict, "guaranteed", None)
        why = "; ".join(str(r) for r in getattr(verdict, "reasons", None) or []) or "no details"
        allowance = bounded_allowance(facts, verdict)
        if verdict is None:
            refusals.append("memory guarantee unknown: this guestcheck has no memory check")
        elif guaranteed is True:
            checked.append("memory is guaranteed" + (f" ({why})" if why != "no details" else ""))
        elif allowance is not None and ceiling is not None and ceiling <= allowance.limit_bytes:
            bounded = True
            checked.append(f"memory is not guaranteed, but {allowance.text()}: this ceiling is {ceiling} bytes")
        elif guaranteed is False:
            over = (f"; {ceiling} bytes per socket is above the {allowance.limit_bytes} bytes "
                    f"({IDLE_BALLOON_SHARE} of MemTotal) an idle balloon allows" if allowance is not None else "")
            refusals.append(f"memory is not guaranteed ({why}){over}")
        else:
            refusals.append(f"memory guarantee could not be confirmed ({why})")
    if guards.min_ram_mb is not None:
        total = total_ram_bytes(facts, verdict)
        if total is None:
            refusals.append(f"RAM unknown, the profile needs at least {guards.min_ram_mb} MiB")
        elif total >= guards.min_ram_mb * MIB:
            checked.append(f"RAM {total // MIB} MiB >= {guards.min_ram_mb} MiB")
        elif sized and ceiling is not None and ceiling <= total * buffer_share(guards):
            below = True
            checked.append(f"RAM is {total // MIB} MiB, below the profile's {guards.min_ram_mb} MiB, but the "
                           f"ceiling is sized to the path: {ceiling} bytes per socket, within "
                           f"{buffer_share(guards)} of it")
        else:
            refusals.append(f"RAM is {total // MIB} MiB, below the profile's minimum of {guards.min_ram_mb} MiB")
    return GuardResult(not refusals, refusals or checked, bounded and not refusals, below and not refusals)


def buffer_share(guards: Guards) -> Fraction:
    """The most of the RAM a ceiling sized to the path may take: the profile's max_buffer_share, else 1/16."""
    from guestcheck.tune.sizing import DEFAULT_SHARE

    return guards.max_buffer_share or DEFAULT_SHARE
