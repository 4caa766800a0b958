"""Which profile suits this machine: big buffers only where the memory behind them is guaranteed."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from guestcheck.quantities import triple_max
from guestcheck.tune import guard
from guestcheck.tune.profile import Guards, Loader, ProfileError

THROUGHPUT, FALLBACK, WAN, WAN_LOSSY = "throughput", "latency", "wan", "wan-lossy"
LONG_RTT_S = 0.030  # beyond this a path is long: wan adds fq pacing and MTU probing to the sized buffers


@dataclass
class Recommendation:
    profile: str
    reasons: List[str] = field(default_factory=list)  # what was found
    conclusion: str = ""  # why that leads to this profile
    alternatives: List[str] = field(default_factory=list)
    sizes: List[str] = field(default_factory=list)  # the buffer arithmetic, when a path was given
    command: str = ""  # what to run next
    refusals: List[str] = field(default_factory=list)  # which apply the memory guard refuses without --force, why

    def __post_init__(self) -> None:
        self.command = self.command or f"guestcheck tune diff {self.profile}"


def path_arguments(path: Any) -> str:
    """--rate and --rtt that reproduce `path` (the RTT as measured, when it came from --peer)."""
    bps = round(path.rate_bps)
    for suffix, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bps % size == 0:
            rate = f"{bps // size}{suffix}"
            break
    else:
        rate = str(bps)
    return f"--rate {shlex.quote(rate)} --rtt {shlex.quote(f'{path.rtt_s * 1000:.4g}ms')}"


def recommend(facts: Any, dirs: Sequence[str], verdict_of: Callable[[Any], Any], path: Any = None,
              procsys: Any = None) -> Recommendation:
    """The profile for this machine; with a path (sizing.NetPath), the buffer sizes it would apply too."""
    chosen = _recommend(facts, dirs, verdict_of, procsys)
    if path is None:
        return chosen
    return _with_path(chosen, facts, dirs, verdict_of, path, procsys)


def _with_path(chosen: Recommendation, facts: Any, dirs: Sequence[str], verdict_of: Callable[[Any], Any],
               path: Any, procsys: Any) -> Recommendation:
    from guestcheck.tune.netpath import size_path

    big = chosen.profile == THROUGHPUT
    name = WAN if big and path.rtt_s >= LONG_RTT_S else chosen.profile
    try:
        guards = Loader(dirs).load(name if big else THROUGHPUT).guards  # its max_buffer_share, if it sets one
    except ProfileError:
        guards = Guards()
    sizing = size_path(path, procsys, facts, guards, verdict_of)
    sizes = sizing.lines()
    args = path_arguments(path)
    if big:
        long = (f"; at {path.rtt_s * 1000:.0f} ms the path is long, so {WAN}: fq pacing and MTU probing on top"
                if name == WAN else "")
        have = _kernel_ceiling(procsys)
        why = (f"the kernel's own tcp_rmem ceiling ({have} bytes) already holds this path's window: sizing "
               "raises nothing here" if have is not None and have >= sizing.ceiling_bytes else
               f"memory is there for buffers sized to the path: {sizing.ceiling_bytes} bytes per socket at most")
        return Recommendation(name, chosen.reasons, why + long,
                              [f"{THROUGHPUT} {args}", f"{WAN_LOSSY} {args}: BBR too, if the path loses packets "
                               "(selftest's retransmits)"] if name == WAN else
                              [f"{WAN} {args}: fq pacing and MTU probing too"],
                              sizes, f"guestcheck tune apply {name} {args}")
    sized_check = guard.check(guards.merged(Guards(requires_guaranteed_memory=True)), facts, verdict_of,
                              _sized_raise(procsys, sizing.ceiling_bytes), sized=True)
    refused = [] if sized_check.allowed else [f"`guestcheck tune apply {WAN} {args}` would be refused without "
                                              "--force: " + "; ".join(sized_check.reasons)]
    return Recommendation(name, chosen.reasons, chosen.conclusion + "; buffers sized to the path need guaranteed "
                          "memory too, so they are not recommended here",
                          [*chosen.alternatives, f"{WAN} {args} --force: the sizes shown, if you know the memory "
                                                 "is really there"],
                          sizes, f"guestcheck tune diff {name}", chosen.refusals + refused)


def _sized_raise(procsys: Any, ceiling: int) -> int:
    """The highest buffer ceiling a sized apply would raise above the value in force (0: none)."""
    from guestcheck.tune.sizing import SIZED_KEYS

    return guard.raised_ceiling(_against_live(procsys, {key: " ".join([str(ceiling)] * (index + 1))
                                                        for key, index in SIZED_KEYS.items()}))


def _against_live(procsys: Any, targets: Dict[str, str]) -> List[Tuple[str, Optional[str], str]]:
    """(key, value in force, value to write) rows; a key this kernel lacks is never written, so it is left out.
    Without a kernel to read (procsys None), every value in force is unknown, which counts as raised."""
    rows = []
    for key, target in targets.items():
        live = procsys.read(key) if procsys else None
        if procsys is None or live is not None:
            rows.append((key, live, target))
    return rows


def _kernel_ceiling(procsys: Any) -> Optional[int]:
    """The live tcp_rmem maximum, or None when it cannot be read."""
    return triple_max(procsys.read("net.ipv4.tcp_rmem") if procsys else None)


def _recommend(facts: Any, dirs: Sequence[str], verdict_of: Callable[[Any], Any],
               procsys: Any = None) -> Recommendation:
    loader = Loader(dirs)
    try:
        throughput = loader.load(THROUGHPUT)
    except ProfileError as e:
        _usable_fallback(loader, e)
        return Recommendation(FALLBACK, [f"the {THROUGHPUT} profile is unusable: {e}"],
                              f"{FALLBACK} needs no memory guarantee")
    ceiling = guard.raised_ceiling(_against_live(procsys, {key: s.value for key, s in throughput.settings.items()}))
    result = guard.check(throughput.guards, facts, verdict_of, ceiling)
    if result.allowed:
        safe = ("16 MiB TCP buffers fit in what an idle balloon allows" if result.bounded else
                "the kernel's ceilings are already at least the profile's, so no buffer grows"
                if ceiling == 0 else "16 MiB TCP buffers are safe here")
        return _only_loadable(loader, Recommendation(
            THROUGHPUT,
            result.reasons,
            f"{safe}, and they let one stream fill a path whose bandwidth x round-trip "
            "time exceeds the kernel's default 4-6 MiB",
            [f"{WAN}: the same buffers plus fq pacing and MTU probing, for long-distance paths",
             f"{WAN_LOSSY}: {WAN} plus BBR, for long paths that lose packets"],
        ))
    _usable_fallback(loader, None)
    return _only_loadable(loader, Recommendation(
        FALLBACK,
        result.reasons,
        f"not {THROUGHPUT}: large per-socket buffers need memory that stays there; "
        f"{FALLBACK} (fq pacing, BBR, MTU probing) costs no extra memory",
        ["many-connections: for servers taking thousands of short connections",
         f"{THROUGHPUT} with --force, if you know the memory is really there"],
        refusals=[f"`guestcheck tune apply {THROUGHPUT}` would be refused without --force: "
                  + "; ".join(result.reasons)],
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
