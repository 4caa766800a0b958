"""The kernel's drop reasons, each mapped to the ledger row and the finding it explains.

The reason names come from the running kernel's own tracepoint format (guestcheck/trace/), so a newer kernel's
reasons arrive by themselves; this table only says where a reason belongs. A reason it does not name keeps its
place by its prefix (TCP_*, IP_*, NEIGH_*...), and one with no prefix it knows is shown as it is. NOT_SPECIFIED is
noise: counted, never reported on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from guestcheck.facts import DropReasons, DropRow, Facts

Place = Tuple[Optional[str], Optional[str], Optional[str]]  # ledger layer, ledger counter, finding id

REASONS: Dict[str, Place] = {
    "NO_SOCKET": ("udp", "UdpNoPorts", "UDP-NO-PORT"),
    "SOCKET_RCVBUFF": ("udp", "UdpRcvbufErrors", "UDP-RCVBUF-ERRORS"),
    "PROTO_MEM": ("udp", "UdpMemErrors", "TCP-MEMORY-PRESSURE"),
    "UDP_CSUM": ("udp", "UdpInErrors", None),
    "SOCKET_BACKLOG": ("tcp", "TcpExtTCPBacklogDrop", "TCP-MEMORY-PRESSURE"),
    "TCP_LISTEN_OVERFLOW": ("tcp", "TcpExtListenOverflows", "TCP-LISTEN-OVERFLOW"),
    "TCP_ZEROWINDOW": ("tcp", "TcpExtTCPZeroWindowDrop", "TCP-MEMORY-PRESSURE"),
    "TCP_OFO_DROP": ("tcp", "TcpExtTCPOFODrop", "TCP-MEMORY-PRESSURE"),
    "TCP_OFO_QUEUE_PRUNE": ("tcp", "TcpExtRcvPruned", "TCP-MEMORY-PRESSURE"),
    "NETFILTER_DROP": ("firewall", None, "FIREWALL-DROPS"),
    "IP_RPFILTER": ("ip", "TcpExtIPReversePathFilter", "IP-RPFILTER-DROPS"),
    "IP_INHDR": ("ip", "IpInHdrErrors", None),
    "IP_CSUM": ("ip", "IpInHdrErrors", None),
    "IP_INADDRERRORS": ("ip", "IpInAddrErrors", None),
    "IP_INVALID_DEST": ("ip", "IpInAddrErrors", None),
    "QDISC_DROP": ("qdisc", "drops", "QDISC-DROPS"),
    "QDISC_OVERLIMIT": ("qdisc", "drops", "QDISC-DROPS"),
    "QDISC_CONGESTED": ("qdisc", "drops", "QDISC-DROPS"),
    "CAKE_FLOOD": ("qdisc", "drops", "QDISC-DROPS"),
    "CPU_BACKLOG": ("softnet", "dropped", "SOFTIRQ-DROPS"),
    "FULL_RING": ("nic", "rx_dropped", "NIC-DROPS"),
    "DEV_READY": ("nic", "tx_dropped", "NIC-DROPS"),
    "TC_INGRESS": ("qdisc", None, None),  # a tc filter's drop action: its own filter's counters, not the qdisc's
    "TC_EGRESS": ("qdisc", None, None),
}
PREFIXES: Tuple[Tuple[str, Place], ...] = (
    ("FQ_", ("qdisc", "drops", "QDISC-DROPS")),
    ("TCP_", ("tcp", None, None)),
    ("UDP_", ("udp", None, None)),
    ("IPV6_", ("ip", None, None)),
    ("IP_", ("ip", None, None)),
    ("NEIGH_", ("neighbour", None, None)),
    ("SOCKET_", ("socket", None, None)),
    ("SKB_", ("nic", None, None)),
)
NO_COUNTER_FINDING = "DROPS-UNCOUNTED"  # a reason no counter shows (TC_INGRESS, NEIGH_FAILED, ...), by itself


def place(reason: str) -> Place:
    """Where a reason belongs: its ledger layer and counter (None: no counter shows it) and its finding."""
    if reason in REASONS:
        return REASONS[reason]
    return next((p for prefix, p in PREFIXES if reason.startswith(prefix)), (None, None, None))


@dataclass(frozen=True)
class ReasonTotal:
    """One reason over the window, all protocols and locations together."""

    reason: str
    count: int
    noise: bool
    known: bool
    layer: Optional[str]
    counter: Optional[str]
    finding: Optional[str]
    locations: Tuple[str, ...]  # the kernel functions, busiest first
    protocols: Tuple[str, ...]


def reason_totals(drops: DropReasons) -> List[ReasonTotal]:
    """The window's reasons, largest first."""
    rows: Dict[str, List[DropRow]] = {}
    for row in drops.rows:
        rows.setdefault(row.reason, []).append(row)
    out = []
    for reason, group in rows.items():
        group = sorted(group, key=lambda r: -r.count)
        layer, counter, finding = place(reason)
        out.append(ReasonTotal(reason, sum(r.count for r in group), any(r.noise for r in group),
                               all(r.known for r in group), layer, counter, finding,
                               tuple(dict.fromkeys(r.location for r in group)),
                               tuple(dict.fromkeys(r.protocol for r in group))))
    return sorted(out, key=lambda t: (-t.count, t.reason))


def drops_section(facts: Facts) -> Optional[Dict[str, object]]:
    """doctor/1's `drops` section (only with --drops): the trace's bookkeeping and each reason with its place."""
    d = facts.drops
    if d is None:
        return None
    section: Dict[str, object] = {
        "available": d.available, "reason_unavailable": d.reason_unavailable, "seconds": d.seconds,
        "machine_wide": d.machine_wide, "capped": d.capped, "cap_per_second": d.cap_per_second,
        "events_seen": d.events_seen, "events_counted": d.events_counted,
        "events_not_counted": d.events_not_counted, "events_lost": d.events_lost,
        "scope": "machine-wide: the tracepoint sees every network namespace, so these drops are not this "
                 "namespace's alone"}
    section["reasons"] = [{"reason": t.reason, "count": t.count, "noise": t.noise, "known": t.known,
                           "ledger_layer": t.layer, "ledger_counter": t.counter, "finding": t.finding,
                           "locations": list(t.locations), "protocols": list(t.protocols)}
                          for t in reason_totals(d)]
    return section
