"""One frame of `watch`: rates between two readings, and what doctor's checks would flag in them.

The softnet, NET_RX and steal figures come from the collectors doctor uses (softnet_cpus, measure_steal) over
the same CounterSample type, and the flags from doctor's own softirq and memory checks (guestcheck.doctor.flags)
run on a Facts holding only this frame's figures: watch highlights exactly what doctor would report, with the
checks' own thresholds. Interface and queue drops: doctor's NIC-DROPS and NIC-QUEUE-DROPS flag any rise during
the sample, so any drop is flagged here too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from guestcheck.collect.counters import CounterReading, CounterSample, counter_delta, read_counters
from guestcheck.collect.ledger import collect_ledger
from guestcheck.collect.softirq import softnet_cpus
from guestcheck.collect.steal import measure_steal
from guestcheck.facts import CpuSteal, Facts, Host, Ledger, Softirq, SoftnetCpu
from guestcheck.findings import Finding, Severity
from guestcheck.judge.ledger import LedgerRow, ledger_rows
from guestcheck.roots import Roots
from guestcheck.watch.links import RX_DROPS, TX_DROPS, LinkReading, QueueKey, read_links


@dataclass
class Reading:
    monotonic: float
    links: Dict[str, LinkReading]
    counters: CounterReading


def take_reading(roots: Roots, names: List[str], ethtool: object = None) -> Reading:
    links = read_links(roots, names, ethtool)
    return Reading(time.monotonic(), links, read_counters(roots))


@dataclass
class Rates:
    rx_bps: float
    tx_bps: float
    rx_pps: float
    tx_pps: float
    drops_per_s: float


@dataclass
class LinkRates:
    name: str
    rates: Rates
    queues: Dict[QueueKey, Rates] = field(default_factory=dict)


@dataclass
class Frame:
    seconds: float
    links: List[LinkRates]
    softnet: List[SoftnetCpu]
    steal: Optional[CpuSteal]
    flags: List[Finding]  # warning or worse, from doctor's checks
    notes: List[str] = field(default_factory=list)
    ledger: List[LedgerRow] = field(default_factory=list)  # the loss ledger's rows that moved (qdisc to socket)
    drops: Optional[Dict[str, int]] = None  # with --drops: packets per drop reason this interval (machine-wide)

    def flagged(self, finding_id: str, subject: str) -> bool:
        """Whether a check flagged this subject (a finding's subject may list several: "cpu0,cpu2")."""
        return any(f.id == finding_id and subject in f.subject.split(",") for f in self.flags)


def _delta(before: Dict[str, int], after: Dict[str, int], names: tuple) -> int:
    return sum(counter_delta(before[n], after[n], 64) for n in names if n in before and n in after)


def _rates(before: Dict[str, int], after: Dict[str, int], seconds: float) -> Rates:
    def per_s(names: tuple) -> float:
        return _delta(before, after, names) / seconds

    return Rates(rx_bps=8 * per_s(("rx_bytes",)), tx_bps=8 * per_s(("tx_bytes",)), rx_pps=per_s(("rx_packets",)),
                 tx_pps=per_s(("tx_packets",)), drops_per_s=per_s(RX_DROPS + TX_DROPS))


def _queue_rates(direction: str, then: Dict[str, int], now: Dict[str, int], seconds: float) -> Rates:
    def per_s(what: str) -> float:
        return counter_delta(then[what], now[what], 64) / seconds if what in then and what in now else 0.0

    bps, pps = 8 * per_s("bytes"), per_s("packets")
    rx = direction == "rx"
    return Rates(bps if rx else 0.0, 0.0 if rx else bps, pps if rx else 0.0, 0.0 if rx else pps, per_s("drops"))


def link_rates(before: LinkReading, after: LinkReading, seconds: float) -> LinkRates:
    queues = {key: _queue_rates(key[0], before.queues[key], now, seconds)
              for key, now in sorted(after.queues.items()) if key in before.queues}
    return LinkRates(after.name, _rates(before.totals, after.totals, seconds), queues)


LEDGER_LAYERS = ("qdisc", "ip", "udp", "tcp")  # the NIC and softnet rows have their own lines in the view
LEDGER_CHECKS = ("qdisc", "udp", "tcp", "rpfilter")


def _judged(softnet: List[SoftnetCpu], steal: Optional[CpuSteal], vcpus: int,
            ledger: Optional[Ledger] = None) -> List[Finding]:
    from guestcheck.doctor import flags

    facts = Facts(host=Host(vcpus=vcpus), cpu_steal=steal, softirq=Softirq(cpus=softnet), ledger=ledger)
    found = flags(facts, ("softirq", "memory", *LEDGER_CHECKS))
    return [f for f in found if f.severity >= Severity.WARNING]


def frame_ledger(roots: Roots, sample: CounterSample) -> Optional[Ledger]:
    """This interval's ledger, as doctor's collector makes it from the same two readings."""
    if sample.after.snmp is None and sample.after.tc is None:
        return None
    return collect_ledger(roots, [], sample)


def make_frame(before: Reading, after: Reading, vcpus: int, roots: Optional[Roots] = None) -> Frame:
    seconds = max(after.monotonic - before.monotonic, 1e-6)
    links = [link_rates(before.links[name], reading, seconds)
             for name, reading in after.links.items() if name in before.links
             and before.links[name].ifindex == reading.ifindex]  # same name, new device: no rate yet
    sample = CounterSample(before.counters, after.counters)
    notes: List[str] = []
    softnet, _, _, _ = softnet_cpus(sample, notes)
    steal = measure_steal(sample)
    ledger = frame_ledger(roots or Roots(), sample)
    rows = [r for r in ledger_rows(Facts(ledger=ledger)) if r.moved and r.layer in LEDGER_LAYERS] if ledger else []
    return Frame(seconds, links, softnet, steal, _judged(softnet, steal, vcpus, ledger), notes, rows)
