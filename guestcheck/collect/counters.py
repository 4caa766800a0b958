"""Two readings of the kernel's cumulative counters, `--sample` seconds apart.

Steal time, softnet drops and time squeezes, NET_RX softirqs, NIC interrupts and conntrack drops only mean something
as rates; the collectors that need them get both readings and the elapsed time, and store rates in the
facts (so a saved facts file judges exactly like the live machine).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from guestcheck.collect.fs import cat
from guestcheck.roots import Roots


@dataclass(frozen=True)
class CounterReading:
    """One reading of the counters that are judged as rates, and when it was taken."""

    monotonic: float
    proc_stat: Optional[str]
    softnet_stat: Optional[str]
    softirqs: Optional[str]
    interrupts: Optional[str]
    conntrack_stat: Optional[str] = None  # /proc/net/stat/nf_conntrack; absent without conntrack
    nics: Optional[Dict[str, Any]] = None  # NIC name -> collect.nic_counters.NicReading; None: not read


@dataclass(frozen=True)
class CounterSample:
    """Two readings over the sample interval: rates come from their difference."""

    before: CounterReading
    after: CounterReading

    @property
    def seconds(self) -> float:
        return max(self.after.monotonic - self.before.monotonic, 1e-6)


NicReader = Callable[[], Dict[str, Any]]


def read_counters(roots: Roots, read_nics: Optional[NicReader] = None) -> CounterReading:
    """`read_nics` reads the NICs' drop counters (collect.nic_counters) in the same moment."""
    return CounterReading(
        monotonic=time.monotonic(),
        proc_stat=cat(os.path.join(roots.proc, "stat")),
        softnet_stat=cat(os.path.join(roots.proc, "net/softnet_stat")),
        softirqs=cat(os.path.join(roots.proc, "softirqs")),
        interrupts=cat(os.path.join(roots.proc, "interrupts")),
        conntrack_stat=cat(os.path.join(roots.proc, "net/stat/nf_conntrack")),
        nics=read_nics() if read_nics is not None else None,
    )


def sample_counters(roots: Roots, seconds: float, read_nics: Optional[NicReader] = None) -> CounterSample:
    """`seconds` <= 0 means "do not sample": one reading twice, so every rate is 0 rather than a few
    packets divided by the microseconds between two reads."""
    before = read_counters(roots, read_nics)
    if seconds <= 0:
        return CounterSample(before, before)
    time.sleep(seconds)
    return CounterSample(before, read_counters(roots, read_nics))


def counter_delta(before: int, after: int, width: int = 32) -> int:
    """after - before for a counter that wraps at 2**width (softnet_stat's are 32-bit)."""
    return after - before if after >= before else after + (1 << width) - before
