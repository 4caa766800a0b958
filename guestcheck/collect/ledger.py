"""The loss ledger's own counters, from the two readings of the sample: qdiscs and classes, IP/UDP/TCP.

The counter sample (collect/counters.py) reads, at both ends of the window and with the softnet counters, the
qdisc and class dump (collect/tc.py), /proc/net/snmp, netstat and snmp6 (collect/netstat.py) and the listening
sockets (guestcheck/sockdiag.py). This area turns them into facts: totals, rises and rates, per network namespace,
and says which namespace. NIC, softnet and conntrack counters stay in their areas; judge/ledger.py lays all of
them out in the packet's order.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from guestcheck.collect.area import Run
from guestcheck.collect.counters import CounterReading, CounterSample, counter_rates
from guestcheck.collect.fs import cat, cat_int, listdir
from guestcheck.collect.kernel import in_initial_netns, kernel_has_module, netns_id
from guestcheck.collect.netstat import parse_snmp, parse_snmp6
from guestcheck.collect.tc import TcObject, TcReading, tc_handle, tc_parent
from guestcheck.facts import Ledger, Listener, Nic, Qdisc
from guestcheck.names import valid_ifname
from guestcheck.roots import Roots

# The counters kept, by their nstat names, in the packet's order (judge/ledger.py gives each its layer).
# Volumes (segments and datagrams sent and received) are kept to judge the others against, not shown as rows.
LEDGER_COUNTERS = (
    "IpInReceives", "IpInHdrErrors", "IpInAddrErrors", "IpInDiscards", "IpOutRequests", "IpOutDiscards",
    "IpReasmFails", "TcpExtIPReversePathFilter",
    "Ip6InReceives", "Ip6InHdrErrors", "Ip6InAddrErrors", "Ip6InDiscards", "Ip6OutDiscards", "Ip6ReasmFails",
    "UdpInDatagrams", "UdpOutDatagrams", "UdpInErrors", "UdpRcvbufErrors", "UdpSndbufErrors", "UdpNoPorts",
    "UdpMemErrors",
    "Udp6InDatagrams", "Udp6OutDatagrams", "Udp6InErrors", "Udp6RcvbufErrors", "Udp6SndbufErrors", "Udp6NoPorts",
    "Udp6MemErrors",
    "TcpInSegs", "TcpOutSegs", "TcpRetransSegs", "TcpExtTCPTimeouts", "TcpExtTCPLostRetransmit",
    "TcpExtTCPSynRetrans", "TcpExtTCPDSACKRecv", "TcpExtTCPDSACKOfoRecv", "TcpExtTCPSpuriousRTOs",
    "TcpExtTCPDSACKIgnoredOld", "TcpExtTCPDSACKIgnoredNoUndo",
    "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPBacklogDrop", "TcpExtTCPRcvQDrop",
    "TcpExtTCPZeroWindowDrop", "TcpExtTCPOFODrop", "TcpExtPruneCalled", "TcpExtRcvPruned",
    "TcpExtTCPMemoryPressures", "TcpExtTCPAbortOnMemory",
)
_KEPT = frozenset(LEDGER_COUNTERS)
# The settings the ledger's findings name, read as they are (a saved facts file shows what the fix would change)
SETTINGS = ("net.core.rmem_default", "net.core.rmem_max", "net.core.wmem_default", "net.core.wmem_max",
            "net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_mem", "net.ipv4.tcp_rmem",
            "net.ipv4.tcp_wmem", "net.ipv4.udp_mem", "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.default.rp_filter")
QDISC_KINDS = ("fq_codel", "fq")  # the queues a QDISC-DROPS fix may suggest, where this kernel has them
COUNTERS_32 = ("drops", "overlimits", "requeues")  # gnet_stats_queue's; packets and bytes are 64-bit
ObjectKey = Tuple[int, str, int, int, bool]


def _ip_counters(reading: CounterReading) -> Dict[str, int]:
    out = parse_snmp(reading.snmp)
    out.update(parse_snmp(reading.netstat))
    out.update(parse_snmp6(reading.snmp6))
    return {k: v for k, v in out.items() if k in _KEPT and v >= 0}


def _key(obj: TcObject) -> ObjectKey:
    return obj.ifindex, obj.kind, obj.handle, obj.parent, obj.is_class


def _counts(obj: TcObject) -> Dict[str, int]:
    c = obj.counters
    return {"packets": c.packets, "bytes": c.bytes, "drops": c.drops, "overlimits": c.overlimits,
            "requeues": c.requeues}


def _device_names(roots: Roots, nics: List[Nic], tc: TcReading) -> Dict[int, str]:
    names = {n.ifindex: n.name for n in nics if n.ifindex is not None}
    wanted = {o.ifindex for o in tc.objects} | {r.target for r in tc.redirects} | {r.ifindex for r in tc.redirects}
    if wanted - set(names):  # a device that appeared after the NICs were read: sysfs knows its index
        for entry in sorted(listdir(os.path.join(roots.sys, "class/net"))):
            if valid_ifname(entry):
                index = cat_int(os.path.join(roots.sys, "class/net", entry, "ifindex"))
                if index is not None:
                    names.setdefault(index, entry)
    return names


def qdiscs(roots: Roots, nics: List[Nic], sample: CounterSample, notes: List[str]) -> List[Qdisc]:
    after: Optional[TcReading] = sample.after.tc
    if after is None:
        notes.append("qdiscs not read: netlink answers for the running machine only, not for a fake tree")
        return []
    if after.problem:
        notes.append(f"qdiscs: {after.problem}")
    before: Dict[ObjectKey, TcObject] = {}
    sampled = sample.before is not sample.after and sample.before.tc is not None
    if sampled:
        before = {_key(o): o for o in sample.before.tc.objects}
    names = _device_names(roots, nics, after)
    ingress_of: Dict[int, List[str]] = {}
    for r in after.redirects:
        if r.action.startswith("egress") and r.ifindex in names:
            ingress_of.setdefault(r.target, []).append(names[r.ifindex])
    out = []
    for obj in after.objects:
        device = names.get(obj.ifindex, f"ifindex {obj.ifindex}")
        old = before.get(_key(obj))
        counts = _counts(obj)
        q = Qdisc(device=device, kind=obj.kind,
                  handle=str(obj.handle) if obj.kind == "police" else tc_handle(obj.handle),
                  parent=tc_parent(obj.parent), is_class=obj.is_class, rate_bytes_per_s=obj.rate_bytes_per_s,
                  limit=obj.limit, limit_unit=obj.limit_unit, burst_bytes=obj.burst_bytes,
                  backlog_bytes=obj.counters.backlog_bytes, backlog_packets=obj.counters.backlog_packets,
                  backlog_bytes_peak=max(obj.counters.backlog_bytes, old.counters.backlog_bytes if old else 0),
                  ingress_of=sorted(set(ingress_of.get(obj.ifindex, []))))
        if q.kind == "pfifo_fast" and q.limit is None:  # its queue is the device's txqueuelen
            q.limit, q.limit_unit = cat_int(os.path.join(roots.sys, "class/net", device, "tx_queue_len")), "packets"
        seconds = sample.seconds if old is not None else None
        previous = _counts(old) if old is not None else None
        q.counters = counter_rates(previous, {k: v for k, v in counts.items() if k in COUNTERS_32}, seconds,
                                   notes, f"{device} {q.kind} {q.handle}", width=32)
        q.counters.update(counter_rates(previous, {k: counts[k] for k in ("packets", "bytes")}, seconds, notes,
                                        f"{device} {q.kind} {q.handle}"))
        out.append(q)
    return out


def listeners(sample: CounterSample, notes: List[str]) -> Tuple[List[Listener], Optional[int]]:
    """Listening sockets that had connections waiting in either reading, fullest first."""
    readings = [r.listeners for r in (sample.before, sample.after) if r.listeners is not None]
    if not readings:
        return [], None
    if isinstance(readings[-1], str):
        notes.append(f"listening sockets not read (sock_diag: {readings[-1]})")
        return [], None
    found: Dict[Tuple[str, str, int], Listener] = {}
    for reading in readings:
        if isinstance(reading, str):
            continue
        for s in reading:
            key = (s.family, s.local, s.local_port)
            known = found.get(key)
            if known is None:
                found[key] = Listener(s.family, s.local, s.local_port, s.rqueue, s.wqueue)
            else:
                known.queued = max(known.queued, s.rqueue)
    total = len(found)
    busy = sorted((x for x in found.values() if x.queued), key=lambda x: (-x.queued / max(x.backlog, 1), x.port))
    return busy[:64], total


def settings(roots: Roots, nics: List[Nic]) -> Dict[str, str]:
    """The SETTINGS and each interface's rp_filter, by sysctl's names (an interface's dots written as slashes,
    as `sysctl net.ipv4.conf.eth0/10.rp_filter` takes them)."""
    base = os.path.join(roots.proc, "sys")
    paths = {key: os.path.join(base, *key.split(".")) for key in SETTINGS}
    for n in nics:
        if valid_ifname(n.name) and n.name not in ("all", "default"):
            paths[f"net.ipv4.conf.{n.name.replace('.', '/')}.rp_filter"] = os.path.join(
                base, "net/ipv4/conf", n.name, "rp_filter")
    out = {}
    for key, path in paths.items():
        value = cat(path)
        if value is not None:
            out[key] = " ".join(value.split())
    return out


def collect_ledger(roots: Roots, nics: List[Nic], sample: CounterSample) -> Ledger:
    notes: List[str] = []
    sampled = sample.before is not sample.after
    ledger = Ledger(netns=netns_id(roots), netns_is_initial=in_initial_netns(roots), sampled=sampled,
                    seconds=round(sample.seconds, 3) if sampled else 0.0)
    ledger.qdiscs = qdiscs(roots, nics, sample, notes)
    after = _ip_counters(sample.after)
    if not after:
        notes.append(f"{roots.proc}/net/snmp and netstat are not readable: no IP, UDP or TCP counters")
    before = _ip_counters(sample.before) if sampled else None
    ledger.counters = counter_rates(before, after, sample.seconds if sampled else None, notes, "IP/UDP/TCP counters")
    ledger.listeners, ledger.listeners_total = listeners(sample, notes)
    ledger.settings = settings(roots, nics)
    ledger.qdisc_kinds = {kind: kernel_has_module(roots, f"sch_{kind}") for kind in QDISC_KINDS}
    ledger.notes = notes
    return ledger


AREA = "ledger"
SAMPLED = True


def collect(run: Run) -> Ledger:
    return collect_ledger(run.roots, run.facts.nics, run.counters)
