"""Two readings of the kernel's cumulative counters, `--sample` seconds apart.

Steal time, softnet drops and time squeezes, NET_RX softirqs, NIC interrupts and conntrack drops only mean something
as rates; the collectors that need them get both readings and the elapsed time, and store rates in the
facts (so a saved facts file judges exactly like the live machine).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from guestcheck.collect.fs import cat
from guestcheck.facts import CounterRate
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
    snmp: Optional[str] = None  # /proc/net/snmp, /proc/net/netstat, /proc/net/snmp6: the ledger's IP/UDP/TCP rows
    netstat: Optional[str] = None
    snmp6: Optional[str] = None
    tc: Optional[Any] = None  # collect.tc.TcReading: every qdisc and class; None: not read (a fake tree)
    listeners: Optional[Any] = None  # sockdiag listening sockets (a list), or the OSError text; None: not read
    flows: Optional[Any] = None  # sockdiag TCP connections (a list of TcpFlow), or the OSError text; None: not read


@dataclass(frozen=True)
class CounterSample:
    """Two readings over the sample interval: rates come from their difference."""

    before: CounterReading
    after: CounterReading

    @property
    def seconds(self) -> float:
        return max(self.after.monotonic - self.before.monotonic, 1e-6)


NicReader = Callable[[], Dict[str, Any]]


def _live_readings(roots: Roots, connections: bool) -> Dict[str, Any]:
    """The netlink readings (qdiscs, listening sockets, with `connections` the TCP connections): only of the
    machine itself, never beside a fake tree, whose /proc would then disagree with them."""
    if roots.proc != "/proc":
        return {}
    from guestcheck.collect.tc import read_tc
    from guestcheck.sockdiag import listeners, tcp_reading

    found: Any
    flows: Any = None
    try:  # one dump: the listening sockets (the ledger) and the connections, raw (decoded in collect/flows.py)
        if connections:
            found, flows = tcp_reading()
        else:  # listening sockets only: the kernel does not walk its connection table (~2 ms, however empty)
            found = listeners()
    except OSError as e:
        found = e.strerror or str(e)
        flows = found if connections else None
    return {"tc": read_tc(), "listeners": found, "flows": flows}


def read_counters(roots: Roots, read_nics: Optional[NicReader] = None, connections: bool = False) -> CounterReading:
    """`read_nics` reads the NICs' drop counters (collect.nic_counters) in the same moment; `connections` adds
    every TCP connection with its tcp_info (guestcheck flows, doctor's flow findings)."""
    net = os.path.join(roots.proc, "net")
    return CounterReading(
        monotonic=time.monotonic(),
        proc_stat=cat(os.path.join(roots.proc, "stat")),
        softnet_stat=cat(os.path.join(net, "softnet_stat")),
        softirqs=cat(os.path.join(roots.proc, "softirqs")),
        interrupts=cat(os.path.join(roots.proc, "interrupts")),
        conntrack_stat=cat(os.path.join(net, "stat/nf_conntrack")),
        nics=read_nics() if read_nics is not None else None,
        snmp=cat(os.path.join(net, "snmp")),
        netstat=cat(os.path.join(net, "netstat")),
        snmp6=cat(os.path.join(net, "snmp6")),
        **_live_readings(roots, connections),
    )


def sample_counters(roots: Roots, seconds: float, read_nics: Optional[NicReader] = None,
                    connections: Optional[bool] = None) -> CounterSample:
    """`seconds` <= 0 means "do not sample": one reading twice, so every rate is 0 rather than a few
    packets divided by the microseconds between two reads. The TCP connections are read when `connections`
    says so, by default only when sampling: unsampled, nothing judges them (doctor's flow findings need a
    window), and `guestcheck flows --sample 0` asks for them."""
    wanted = seconds > 0 if connections is None else connections
    before = read_counters(roots, read_nics, wanted)
    if seconds <= 0:
        return CounterSample(before, before)
    time.sleep(seconds)
    return CounterSample(before, read_counters(roots, read_nics, wanted))


def counter_delta(before: int, after: int, width: int = 32) -> int:
    """after - before for a counter that wraps at 2**width (softnet_stat's are 32-bit)."""
    return after - before if after >= before else after + (1 << width) - before


def counter_rates(before: Optional[Dict[str, int]], after: Dict[str, int], seconds: Optional[float],
                  notes: List[str], what: str, keep: Callable[[str], bool] = lambda _: True,
                  width: int = 64) -> Dict[str, CounterRate]:
    """Each kept counter's total (the `after` reading) and, where `before` has it and `seconds` is given, its
    rise and rate; a counter that went backwards (reset) keeps its total only, and `notes` says so."""
    out = {}
    went_back = []
    for name, total in after.items():
        if not keep(name):
            continue
        rate = CounterRate(total=total)
        if seconds is not None and before is not None and name in before:
            if total >= before[name] or (width < 64 and before[name] - total > (1 << (width - 1))):
                rate.rise = counter_delta(before[name], total, width)
                rate.per_s = round(rate.rise / seconds, 3)
            else:
                went_back.append(name)
        out[name] = rate
    if went_back:
        notes.append(f"{what} went backwards during the sample (reset?): {', '.join(sorted(went_back))}")
    return out
