"""Each NIC's drop and limit counters, read at both ends of the `--sample` window like the softnet counters.

A reading is the six drop/error counters of /sys/class/net/IFACE/statistics and the driver's own counters
(ETHTOOL_GSTATS, what `ethtool -S` prints). The facts keep the totals and rises of the curated ones only
(guestcheck/drivercounters.py); `nic.driver_stats` keeps every driver counter of the last reading.
A driver without statistics, a NIC that vanished, a counter that went backwards: a note, never a crash.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

from guestcheck.collect.area import Run
from guestcheck.collect.counters import CounterSample, counter_rates
from guestcheck.collect.ethtool import EthtoolError
from guestcheck.collect.fs import cat_int
from guestcheck.drivercounters import INTERFACE_COUNTERS, curated
from guestcheck.facts import Nic, NicCounters
from guestcheck.roots import Roots


@dataclass(frozen=True)
class NicReading:
    """One NIC's counters at one moment."""

    monotonic: float
    interface: Dict[str, int] = field(default_factory=dict)  # the sysfs statistics that could be read
    driver: Optional[Dict[str, int]] = None  # every driver counter; None when the driver gave none
    driver_error: str = ""  # why not: unsupported, no-device, not-captured, ...


def read_nic(roots: Roots, name: str, ethtool) -> NicReading:
    stats_dir = os.path.join(roots.sys, "class/net", name, "statistics")
    interface = {}
    for counter in INTERFACE_COUNTERS:
        value = cat_int(os.path.join(stats_dir, counter))
        if value is not None and value >= 0:
            interface[counter] = value
    try:
        return NicReading(time.monotonic(), interface, ethtool.stats(name))
    except EthtoolError as e:
        return NicReading(time.monotonic(), interface, None, e.reason)


def read_nics(roots: Roots, names: Iterable[str], ethtool) -> Dict[str, NicReading]:
    """Every NIC's reading; a NIC that vanished has no statistics directory and no driver answer."""
    return {name: read_nic(roots, name, ethtool) for name in names}


def counted_nics(nics: List[Nic]) -> List[str]:
    """The NICs whose counters are sampled: all but loopback."""
    return [n.name for n in nics if n.link_type != 772 and n.software_type != "loopback"]


def _is_counted(name: str) -> bool:
    counter = curated(name)
    return counter is not None and counter.kind != "gauge"


def nic_counters(name: str, before: Optional[NicReading], after: NicReading) -> NicCounters:
    """The facts of one NIC from its two readings (`before` is None or `after` itself: not sampled)."""
    sampled = before is not None and before is not after
    seconds = max(after.monotonic - before.monotonic, 1e-6) if sampled and before is not None else None
    out = NicCounters(nic=name, sampled=sampled, seconds=round(seconds or 0.0, 3))
    if not after.interface:
        out.notes.append("no statistics in sysfs")
    out.interface = counter_rates(before.interface if sampled and before else None, after.interface, seconds,
                                  out.notes, "interface statistics")
    if after.driver is None:
        out.notes.append(f"no driver statistics ({after.driver_error or 'unknown'})")
        return out
    if not after.driver:
        out.notes.append("the driver has no statistics")
    previous = before.driver if sampled and before else None
    if sampled and previous is None:
        out.notes.append("driver statistics only at the end of the sample: totals, no rates")
    out.driver = counter_rates(previous, after.driver, seconds, out.notes, "driver counters", _is_counted)
    out.gauges = {k: v for k, v in after.driver.items() if (c := curated(k)) is not None and c.kind == "gauge"}
    return out


def collect_nic_counters(nics: List[Nic], sample: CounterSample) -> List[NicCounters]:
    """Facts from the readings the sample took; a NIC present in the last reading only is totals only.
    The NICs' `driver_stats` become the last reading's, so they and the totals agree."""
    before: Dict[str, NicReading] = sample.before.nics or {}
    after: Dict[str, NicReading] = sample.after.nics or {}
    by_name = {n.name: n for n in nics}
    out = []
    for name, reading in after.items():
        counters = nic_counters(name, before.get(name), reading)
        if sample.before is not sample.after and name not in before:
            counters.notes.append("appeared during the sample: totals only")
        nic = by_name.get(name)
        if nic is not None and reading.driver is not None:
            nic.driver_stats = reading.driver
            nic.unknown.pop("driver_stats", None)
        elif nic is not None and nic.driver_stats is None:
            nic.unknown["driver_stats"] = reading.driver_error or "unknown"
        out.append(counters)
    return out


AREA = "nic_counters"
SAMPLED = True


def collect(run: Run) -> List[NicCounters]:
    return collect_nic_counters(run.facts.nics, run.counters)
