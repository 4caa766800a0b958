"""Which profile suits this machine: big buffers only where the memory behind them is guaranteed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence

from guestcheck.tune import guard
from guestcheck.tune.profile import Loader, ProfileError

THROUGHPUT, FALLBACK = "throughput", "latency"


@dataclass
class Recommendation:
    profile: str
    reasons: List[str] = field(default_factory=list)  # what was found
    conclusion: str = ""  # why that leads to this profile
    alternatives: List[str] = field(default_factory=list)


def recommend(facts: Any, dirs: Sequence[str],
              verdict_of: Callable[[Any], Any] = guard.default_verdict) -> Recommendation:
    loader = Loader(dirs)
    try:
        throughput = loader.load(THROUGHPUT)
    except ProfileError as e:
        _usable_fallback(loader, e)
        return Recommendation(FALLBACK, [f"the {THROUGHPUT} profile is unusable: {e}"],
                              f"{FALLBACK} needs no memory guarantee")
    result = guard.check(throughput.guards, facts, verdict_of)
    if result.allowed:
        return _only_loadable(loader, Recommendation(
            THROUGHPUT,
            result.reasons,
            "16 MiB TCP buffers are safe here, and they let one stream fill a path whose bandwidth x round-trip "
            "time exceeds the kernel's default 4-6 MiB",
            ["wan: the same buffers plus fq pacing and BBR, for lossy long-distance paths"],
        ))
    _usable_fallback(loader, None)
    return _only_loadable(loader, Recommendation(
        FALLBACK,
        result.reasons,
        f"not {THROUGHPUT}: large per-socket buffers need memory that stays there; "
        f"{FALLBACK} (fq pacing, BBR, MTU probing) costs no extra memory",
        ["many-connections: for servers taking thousands of short connections",
         f"{THROUGHPUT} with --force, if you know the memory is really there"],
    ))


def _only_loadable(loader: Loader, r: Recommendation) -> Recommendation:
    """Alternatives name profiles too ("wan: ..."): keep only those that load from these directories."""
    def loads(alternative: str) -> bool:
        try:
            loader.load(alternative.split(":")[0].split()[0])
        except ProfileError:
            return False
        return True

    r.alternatives = [a for a in r.alternatives if loads(a)]
    return r


def _usable_fallback(loader: Loader, why_not_throughput: Optional[ProfileError]) -> None:
    """Never recommend a profile that cannot be loaded: say why neither can be used instead."""
    try:
        loader.load(FALLBACK)
    except ProfileError as e:
        if why_not_throughput is not None:
            raise ProfileError(f"no usable profile to recommend: {why_not_throughput}; and {e}") from None
        raise ProfileError(f"no usable profile to recommend ({THROUGHPUT} is refused here): {e}") from None
