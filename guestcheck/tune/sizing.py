"""TCP buffer ceilings sized to the path: bandwidth x round trip, the kernel's receive overhead, a memory cap.

The rule, in one place (README "Buffers sized to the path"):
- BDP = rate / 8 x RTT: the bytes in flight that keep the path full.
- A receive buffer holds the window plus the kernel's per-packet overhead. Kernels before 6.6 advertise
  `space - space >> tcp_adv_win_scale` of it (`space >> -scale` for scale <= 0): with the default scale 1,
  half, so the buffer must be 2 x BDP. From 6.6 the ratio is measured per socket (skb->len / truesize) and
  starts at one half: 2 x covers that default too, and the sysctl no longer counts. The send side needs the
  same: a whole window stays queued until it is acknowledged, plus the kernel's skb overhead.
- No ceiling exceeds max_buffer_share (default 1/16, `[guestcheck] max_buffer_share`) of the guaranteed RAM,
  nor the kernel's int limit. Where memory is not guaranteed only because of an idle or deflate-on-oom
  balloon (guard.bounded_allowance), the cap is 1/64 of MemTotal (or the smaller profile share).
- Still raise-only: a kernel value above the result is never lowered.
Pure functions: the caller reads the sysctl, the kernel release and the memory verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Callable, Dict, Optional

from guestcheck.kernelversion import kernel_version
from guestcheck.quantities import maybe_int, parse_int
from guestcheck.tune.profile import Profile, Setting

DEFAULT_SHARE = Fraction(1, 16)
INT_MAX = 2**31 - 1  # tcp_rmem/tcp_wmem fields and rmem_max/wmem_max are C ints
PAGE = 4096
MIN_RTT_S, MAX_RTT_S = 1e-6, 10.0
# key -> which field holds the ceiling
SIZED_KEYS: Dict[str, int] = {"net.ipv4.tcp_rmem": 2, "net.ipv4.tcp_wmem": 2,
                              "net.core.rmem_max": 0, "net.core.wmem_max": 0}
TRIPLES = ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")
PATH, MEMORY, KERNEL = "path", "memory", "kernel int limit"
PER_SOCKET_RATIO_SINCE = (6, 6)


@dataclass(frozen=True)
class NetPath:
    rate_bps: float
    rtt_s: float
    rtt_source: str  # "--rtt 300ms" or "measured: ..."

    @property
    def bdp_bytes(self) -> int:
        return math.ceil(self.rate_bps / 8 * self.rtt_s)

    def text(self) -> str:
        from guestcheck.quantities import format_rate

        return f"{format_rate(self.rate_bps)} x {_ms(self.rtt_s)}"


@dataclass(frozen=True)
class Overhead:
    factor: Fraction  # buffer bytes per window byte
    why: str


@dataclass(frozen=True)
class MemoryCap:
    ram_bytes: int
    share: Fraction
    guaranteed: Optional[bool]
    allowed_by: str = ""  # not guaranteed, but an idle balloon allows this share of MemTotal: its evidence

    @property
    def cap_bytes(self) -> int:
        return int(self.ram_bytes * self.share) // PAGE * PAGE

    def text(self) -> str:
        if self.allowed_by:
            return (f"{self.share} of {_mib(self.ram_bytes)} MemTotal, NOT guaranteed, allowed by "
                    f"{self.allowed_by} = {self.cap_bytes} bytes")
        word = "guaranteed" if self.guaranteed else "usable, NOT guaranteed,"
        return f"{self.share} of {_mib(self.ram_bytes)} {word} RAM = {self.cap_bytes} bytes"


@dataclass(frozen=True)
class Sizing:
    path: NetPath
    overhead: Overhead
    memory: MemoryCap
    needed_bytes: int  # BDP x factor, rounded up to a page
    ceiling_bytes: int  # what the ceilings are raised to (at least), after the caps
    bound: str  # path | memory | kernel int limit

    def lines(self) -> list:
        """The arithmetic, for diff and recommend."""
        p = self.path
        return [f"path: {p.text()} ({p.rtt_source})",
                f"BDP: {p.bdp_bytes} bytes ({_mib(p.bdp_bytes)})",
                f"overhead: x {self.overhead.factor} ({self.overhead.why}) = {self.needed_bytes} bytes",
                f"memory cap: {self.memory.text()}",
                f"ceiling: {self.ceiling_bytes} bytes ({_mib(self.ceiling_bytes)}), bound by the {self.bound}"
                + ("" if self.bound == PATH else f" (the path needs {self.needed_bytes})")]

    def summary(self) -> str:
        """One line, kept in the journal and the persist file."""
        return (f"sized to {self.path.text()}: BDP {self.path.bdp_bytes} x {self.overhead.factor} = "
                f"{self.needed_bytes}, cap {self.memory.cap_bytes} ({self.memory.share} of RAM): "
                f"{self.ceiling_bytes} bytes, bound by the {self.bound}")


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.3g} ms"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def overhead(adv_win_scale: Optional[str], release: Optional[str]) -> Overhead:
    """The receive-buffer overhead factor this kernel applies (see the module docstring)."""
    version = kernel_version(release)
    if version is not None and version >= PER_SOCKET_RATIO_SINCE:
        return Overhead(Fraction(2), f"kernel {version[0]}.{version[1]} measures the ratio per socket; "
                                     "2x covers its default")
    if adv_win_scale is None:
        return Overhead(Fraction(2), "no tcp_adv_win_scale here: 2x, the default")
    try:
        scale = parse_int(adv_win_scale, signed=True)
    except ValueError:
        return Overhead(Fraction(2), "tcp_adv_win_scale unreadable: 2x, the default")
    if not -31 <= scale <= 31:
        return Overhead(Fraction(2), f"tcp_adv_win_scale {scale} out of range: 2x, the default")
    factor = Fraction(2**scale, 2**scale - 1) if scale > 0 else Fraction(2**-scale)
    return Overhead(factor, f"tcp_adv_win_scale {scale}")


def size(path: NetPath, over: Overhead, memory: MemoryCap) -> Sizing:
    needed = math.ceil(path.bdp_bytes * over.factor / PAGE) * PAGE
    ceiling, bound = needed, PATH
    if memory.cap_bytes < ceiling:
        ceiling, bound = memory.cap_bytes, MEMORY
    if ceiling > INT_MAX:
        ceiling, bound = INT_MAX // PAGE * PAGE, KERNEL
    return Sizing(path, over, memory, needed, ceiling, bound)


def sized_profile(profile: Profile, ceiling: int, summary: str,
                  baseline: Callable[[str], Optional[str]]) -> Profile:
    """The profile with each buffer ceiling replaced by `ceiling`, raise-only. A key the profile lacks is
    added, its other fields taken from `baseline(key)` (the original value), so only the ceiling moves."""
    settings = dict(profile.settings)
    for key, field in SIZED_KEYS.items():
        own = settings.get(key)
        if key in TRIPLES:
            fields = (own.value if own else baseline(key) or "").split()
            if len(fields) != 3:
                continue  # no such key here (or an odd one): nothing to size
        else:
            fields = [""]
        # a ceiling below the triple's default would be refused by the kernel (tcp_rmem's max under its default):
        # a tiny path keeps at least the default the sockets already get
        floor = maybe_int(fields[1]) if key in TRIPLES and field == 2 else None
        fields[field] = str(max(ceiling, floor or 0))
        settings[key] = Setting(key, " ".join(fields), True, summary, own.where if own else "path sizing",
                                own.source if own else "")
    return replace(profile, settings=settings)
