"""The loss ledger: every drop and queue counter of the window, laid out in the packet's order, each with the
finding that explains it; and which qdiscs shape the way out.

The counters stay in the areas that read them (nic_counters, softirq, ledger, conntrack); this is the one place
that joins them, so the human report, `--json`, Prometheus and `watch` show the same rows, and the checks, selftest
and `flows` agree on what shapes the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Set, Tuple

from guestcheck.drivercounters import INCLUDED_IN_TX_ERRORS, RING_OVERFLOW, curated
from guestcheck.facts import CounterRate, Facts, Ledger, Qdisc

LAYERS = ("nic", "softnet", "qdisc", "ip", "udp", "tcp", "conntrack")  # the packet's order, NIC to socket
SHAPING_KINDS = ("tbf", "htb", "hfsc", "cake", "police")
# qdiscs whose counters add up their children's (the leaf qdiscs carry the drops, and are judged there)
AGGREGATING = ("mq", "mqprio", "htb", "hfsc", "prio", "drr", "qfq", "ets", "multiq", "cbq", "taprio")
QDISC_COUNTERS = ("drops", "overlimits", "requeues")

# ip/udp/tcp rows: nstat name -> the finding that explains it (None: shown, judged by no finding of its own)
COUNTER_FINDINGS: Dict[str, Optional[str]] = {
    "IpInHdrErrors": None, "IpInAddrErrors": None, "IpInDiscards": None, "IpOutDiscards": None,
    "IpReasmFails": None, "TcpExtIPReversePathFilter": "IP-RPFILTER-DROPS",
    "Ip6InHdrErrors": None, "Ip6InAddrErrors": None, "Ip6InDiscards": None, "Ip6OutDiscards": None,
    "Ip6ReasmFails": None,
    "UdpInErrors": "UDP-RCVBUF-ERRORS", "UdpRcvbufErrors": "UDP-RCVBUF-ERRORS",
    "UdpSndbufErrors": "UDP-SNDBUF-ERRORS", "UdpNoPorts": "UDP-NO-PORT", "UdpMemErrors": "TCP-MEMORY-PRESSURE",
    "Udp6InErrors": "UDP-RCVBUF-ERRORS", "Udp6RcvbufErrors": "UDP-RCVBUF-ERRORS",
    "Udp6SndbufErrors": "UDP-SNDBUF-ERRORS", "Udp6NoPorts": "UDP-NO-PORT", "Udp6MemErrors": "TCP-MEMORY-PRESSURE",
    "TcpRetransSegs": "TCP-RETRANSMITS", "TcpExtTCPTimeouts": "TCP-RETRANSMITS",
    "TcpExtTCPLostRetransmit": "TCP-RETRANSMITS", "TcpExtTCPSynRetrans": "TCP-RETRANSMITS",
    "TcpExtTCPSpuriousRTOs": "TCP-RETRANSMITS",
    "TcpExtListenOverflows": "TCP-LISTEN-OVERFLOW", "TcpExtListenDrops": "TCP-LISTEN-OVERFLOW",
    "TcpExtTCPBacklogDrop": "TCP-MEMORY-PRESSURE", "TcpExtTCPRcvQDrop": "TCP-MEMORY-PRESSURE",
    "TcpExtTCPZeroWindowDrop": "TCP-MEMORY-PRESSURE", "TcpExtTCPOFODrop": "TCP-MEMORY-PRESSURE",
    "TcpExtPruneCalled": "TCP-MEMORY-PRESSURE", "TcpExtRcvPruned": "TCP-MEMORY-PRESSURE",
    "TcpExtTCPMemoryPressures": "TCP-MEMORY-PRESSURE", "TcpExtTCPAbortOnMemory": "TCP-MEMORY-PRESSURE",
}


@dataclass(frozen=True)
class LedgerRow:
    """One counter of the window."""

    layer: str  # one of LAYERS
    device: Optional[str]  # the interface (nic, qdisc), "cpu1" (softnet), None for the namespace's counters
    detail: str  # qdisc: "tbf 8001: root"; tcp retransmissions: "of 120000 sent"; else ""
    counter: str
    total: int
    rise: Optional[int]
    per_s: Optional[float]
    moved: bool
    finding: Optional[str]

    @property
    def where(self) -> str:
        """The device and the detail ("gc0 tbf 8001: root"), as the human report and watch name the row."""
        return " ".join(x for x in (self.device or "", self.detail) if x)


def layer_of(counter: str) -> str:
    if counter.startswith("Ip") or counter == "TcpExtIPReversePathFilter":
        return "ip"
    return "udp" if counter.startswith("Udp") else "tcp"


def qdisc_label(q: Qdisc) -> str:
    if q.kind == "police":
        return f"police {q.handle} {q.parent}"
    if q.is_class:
        return f"{q.kind} class {q.handle} parent {q.parent}"
    return f"{q.kind} {q.handle} {q.parent}"


def _row(layer: str, device: Optional[str], detail: str, counter: str, rate: CounterRate,
         finding: Optional[str]) -> LedgerRow:
    return LedgerRow(layer, device, detail, counter, rate.total, rate.rise, rate.per_s, bool(rate.rise), finding)


def _nic_finding(counter: str, driver: bool) -> Optional[str]:
    if not driver:
        return "RING-RX-DROPS" if counter in RING_OVERFLOW else "NIC-DROPS"
    meaning = curated(counter)
    if meaning is None:
        return None
    return "NIC-ALLOWANCE-EXCEEDED" if meaning.kind == "allowance" else "NIC-QUEUE-DROPS"


def _nic_rows(facts: Facts) -> Iterator[LedgerRow]:
    for c in facts.nic_counters:
        for counter, rate in c.interface.items():
            if counter not in INCLUDED_IN_TX_ERRORS:
                yield _row("nic", c.nic, "", counter, rate, _nic_finding(counter, False))
        for counter, rate in c.driver.items():
            yield _row("nic", c.nic, "driver", counter, rate, _nic_finding(counter, True))


def _softnet_rows(facts: Facts) -> Iterator[LedgerRow]:
    s = facts.softirq
    if s is None:
        return
    for cpu in s.cpus:
        for counter, rise, total, finding in (
                ("dropped", cpu.dropped, cpu.dropped_since_boot, "SOFTIRQ-DROPS"),
                ("time_squeeze", cpu.squeezed, cpu.squeezed_since_boot, "SOFTIRQ-SQUEEZE"),
                ("flow_limit", cpu.flow_limit, cpu.flow_limit_since_boot, None)):
            sampled = facts.sample_seconds > 0
            per_s = round(rise / facts.sample_seconds, 3) if sampled else None
            yield LedgerRow("softnet", f"cpu{cpu.cpu}", "", counter, total, rise if sampled else None, per_s,
                            bool(rise), finding)


def _qdisc_rows(ledger: Ledger) -> Iterator[LedgerRow]:
    for q in ledger.qdiscs:
        label = qdisc_label(q)
        for counter in QDISC_COUNTERS:
            rate = q.counters.get(counter)
            if rate is None:
                continue
            finding = {"drops": "QDISC-DROPS", "overlimits": "QDISC-SHAPED" if is_shaper(q) else None}.get(counter)
            yield _row("qdisc", q.device, label, counter, rate, finding)
        yield LedgerRow("qdisc", q.device, label, "backlog_bytes", q.backlog_bytes, None, None,
                        q.backlog_bytes_peak > 0, "QDISC-SHAPED" if is_shaper(q) else None)


def retransmit_detail(ledger: Ledger) -> str:
    sent = ledger.counters.get("TcpOutSegs")
    if sent is None:
        return ""
    if sent.rise is None:
        return f"of {sent.total} sent since boot"
    return f"of {sent.rise} sent"


def _counter_rows(ledger: Ledger, layer: str) -> Iterator[LedgerRow]:
    for counter, finding in COUNTER_FINDINGS.items():
        rate = ledger.counters.get(counter)
        if rate is not None and layer_of(counter) == layer:
            detail = retransmit_detail(ledger) if counter == "TcpRetransSegs" else ""
            yield _row(layer, None, detail, counter, rate, finding)


def _conntrack_rows(facts: Facts) -> Iterator[LedgerRow]:
    ct = facts.conntrack
    if ct is None or not ct.loaded:
        return
    sampled = facts.sample_seconds > 0 and bool(ct.in_sample)
    for counter, total in ct.since_boot.items():
        rise = ct.in_sample.get(counter) if sampled else None
        per_s = round(rise / facts.sample_seconds, 3) if rise is not None else None
        yield LedgerRow("conntrack", None, "", counter, total, rise, per_s, bool(rise), "CONNTRACK-DROPS")


def ledger_rows(facts: Facts) -> Tuple[LedgerRow, ...]:
    """Every row, in LAYERS order; within a layer as the areas list them."""
    rows: List[LedgerRow] = [*_nic_rows(facts), *_softnet_rows(facts)]
    if facts.ledger is not None:
        rows += _qdisc_rows(facts.ledger)
        for layer in ("ip", "udp", "tcp"):
            rows += _counter_rows(facts.ledger, layer)
    rows += _conntrack_rows(facts)
    return tuple(rows)


def is_shaper(q: Qdisc) -> bool:
    """A qdisc, class or policer that caps the rate (a tbf, an htb class's ceil, an hfsc upper limit, cake's
    bandwidth, a police rate); an htb qdisc itself only holds its classes."""
    return q.kind in SHAPING_KINDS and bool(q.rate_bytes_per_s)


def is_leaf_queue(q: Qdisc) -> bool:
    """A qdisc that holds packets itself: not a class, not a parent adding its children's counters, not ingress."""
    return not q.is_class and q.kind not in (*AGGREGATING, "police", "ingress", "clsact")


def dropping_queues(ledger: Ledger) -> List[Qdisc]:
    """The leaf qdiscs whose drops rose during the window."""
    return [q for q in ledger.qdiscs if is_leaf_queue(q) and (d := q.counters.get("drops")) is not None and d.rise]


def route_devices(facts: Facts) -> Set[str]:
    """The devices that carry a default route, and the lower devices of those that are stacked (a VLAN's)."""
    names: Set[str] = set()
    if facts.path is not None:
        names = {r.dev for r in facts.path.routes if r.dev}
    for nic in facts.nics:
        if nic.name in names:
            names.update(nic.lowers or [])
    return names


def shapers_on_path(facts: Facts) -> List[Qdisc]:
    """The shapers traffic of the default route meets: on a route device, or on the ifb its ingress is
    redirected to (tc's usual way to shape downloads)."""
    if facts.ledger is None:
        return []
    devices = route_devices(facts)
    return [q for q in facts.ledger.qdiscs
            if is_shaper(q) and (q.device in devices or devices.intersection(q.ingress_of))]


def ledger_section(facts: Facts) -> Optional[Dict[str, object]]:
    """doctor/1's `ledger` section: whose counters, the window, and every row (None without a ledger)."""
    if facts.ledger is None:
        return None
    return {"netns": facts.ledger.netns, "netns_is_initial": facts.ledger.netns_is_initial,
            "seconds": facts.ledger.seconds, "sampled": facts.ledger.sampled,
            "rows": [dict(r.__dict__) for r in ledger_rows(facts)]}
