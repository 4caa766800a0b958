"""Which profile suits this machine: big buffers only where the memory behind them is guaranteed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Sequence

from guestcheck.tune import guard
from guestcheck.tune.profile import ProfileError, load

THROUGHPUT, FALLBACK = "throughput", "latency"


@dataclass
class Recommendation:
    profile: str
    reasons: List[str] = field(default_factory=list)  # what was found
    conclusion: str = ""  # why that leads to this profile
    alternatives: List[str] = field(default_factory=list)


def recommend(facts: Any, dirs: Sequence[str],
              verdict_of: Callable[[Any], Any] = guard.default_verdict) -> Recommendation:
    try:
        throughput = load(THROUGHPUT, dirs)
    except ProfileError as e:
        return Recommendation(FALLBACK, [f"the {THROUGHPUT} profile is unusable: {e}"],
                              f"{FALLBACK} needs no memory guarantee")
    result = guard.check(throughput.guards, facts, verdict_of)
    if result.allowed:
        return Recommendation(
            THROUGHPUT,
            result.reasons,
            "16 MiB TCP buffers are safe here, and they let one stream fill a path whose bandwidth x round-trip "
            "time exceeds the kernel's default 4-6 MiB",
            ["wan: the same buffers plus fq pacing and BBR, for lossy long-distance paths"],
        )
    return Recommendation(
        FALLBACK,
        result.reasons,
        f"not {THROUGHPUT}: large per-socket buffers need memory that stays there; "
        f"{FALLBACK} (fq pacing, BBR, MTU probing) costs no extra memory",
        ["many-connections: for servers taking thousands of short connections",
         f"{THROUGHPUT} with --force, if you know the memory is really there"],
    )
