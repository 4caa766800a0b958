"""Queueing disciplines, classes and ingress redirects with their counters, from rtnetlink dumps.

What `tc -s qdisc`, `tc -s class` and `tc filter show ... ingress` print, read the way `tc` reads it: an
RTM_GETQDISC dump (every device at once), an RTM_GETTCLASS dump per device that has a classful qdisc, and an
RTM_GETTFILTER dump of each ingress (or clsact) qdisc, to follow `action mirred ... redirect dev ifb0` to the
device whose qdisc shapes the incoming traffic. The standard library is enough (guestcheck/rtnetlink.py):
importing pyroute2 costs about 120 ms, more than the rest of doctor's start-up.

Counters come from TCA_STATS2 (gnet_stats_basic and gnet_stats_queue: drops, overlimits and requeues are 32-bit,
bytes 64-bit), falling back to the older TCA_STATS. The shaping rate and the queue limit are decoded per kind,
from the same structures iproute2 prints: tbf (tc_tbf_qopt, TCA_TBF_RATE64), htb classes (tc_htb_opt's ceil,
TCA_HTB_CEIL64), hfsc classes (the upper-limit curve's m2), cake (TCA_CAKE_BASE_RATE64), police actions
(tc_police, TCA_POLICE_RATE64), and the limits of the fifos, fq_codel, fq, codel, pie, sfq and netem. Everything is
bounded: a truncated or hostile message ends its walk, never an exception.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from guestcheck.rtnetlink import attributes, dump

RTM_NEWQDISC, RTM_GETQDISC = 36, 38
RTM_NEWTCLASS, RTM_GETTCLASS = 40, 42
RTM_NEWTFILTER, RTM_GETTFILTER = 44, 46
TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
TCA_KIND, TCA_OPTIONS, TCA_STATS, TCA_STATS2 = 1, 2, 3, 7
TCA_STATS_BASIC, TCA_STATS_QUEUE, TCA_STATS_PKT64 = 1, 3, 8
TC_H_ROOT, TC_H_INGRESS, TC_H_CLSACT_INGRESS = 0xFFFFFFFF, 0xFFFFFFF1, 0xFFFFFFF2
INGRESS_KINDS = ("ingress", "clsact")
# qdiscs whose classes carry rates or counters of their own (mq's classes are its queues' qdiscs, dumped already)
CLASSFUL = ("htb", "hfsc", "drr", "qfq", "ets", "prio", "cbq")
MAX_NEST = 8  # nesting depth followed when looking for actions in a filter
MAX_DEVICES = 4096  # class and filter dumps are per device: a machine with more is cut off, with a note

# Actions (linux/pkt_cls.h, tc_act/tc_mirred.h, tc_act/tc_police.h)
TCA_ACT_KIND, TCA_ACT_OPTIONS, TCA_ACT_STATS = 1, 2, 4
TCA_MIRRED_PARMS = 2
MIRRED_ACTIONS = {1: "egress redirect", 2: "egress mirror", 3: "ingress redirect", 4: "ingress mirror"}
TCA_POLICE_TBF, TCA_POLICE_RATE64 = 1, 8


@dataclass
class TcCounters:
    """One reading of a qdisc's or class's counters."""

    packets: int = 0
    bytes: int = 0
    drops: int = 0
    overlimits: int = 0
    requeues: int = 0
    backlog_bytes: int = 0
    backlog_packets: int = 0


@dataclass
class TcObject:
    """A qdisc, a class, or a police action, as one dump answered it."""

    ifindex: int
    kind: str
    handle: int
    parent: int
    is_class: bool = False
    counters: TcCounters = field(default_factory=TcCounters)
    rate_bytes_per_s: Optional[int] = None  # the shaping rate: tbf rate, htb ceil, hfsc upper limit, cake, police
    limit: Optional[int] = None
    limit_unit: str = ""  # packets | bytes
    burst_bytes: Optional[int] = None  # tbf and police: what `tc ... burst` was given


@dataclass
class Redirect:
    """An ingress filter's mirred action: packets arriving on `ifindex` go to `target`'s egress (an ifb)."""

    ifindex: int
    target: int
    action: str  # egress redirect | egress mirror | ...


def tc_handle(value: int) -> str:
    """A handle as tc prints it: "8001:" for a qdisc, "1:10" for a class."""
    major, minor = value >> 16, value & 0xFFFF
    return f"{major:x}:" if minor == 0 else f"{major:x}:{minor:x}"


def tc_parent(value: int) -> str:
    if value == TC_H_ROOT:
        return "root"
    if value in (TC_H_INGRESS, TC_H_CLSACT_INGRESS):
        return "ingress"
    return tc_handle(value)


def _u32(data: bytes, at: int) -> Optional[int]:
    return struct.unpack_from("=I", data, at)[0] if len(data) >= at + 4 else None


def _u64(data: bytes) -> Optional[int]:
    return struct.unpack_from("=Q", data)[0] if len(data) >= 8 else None


def _nested(data: bytes) -> Dict[int, bytes]:
    """The attributes of a nest, by type (the first of each)."""
    out: Dict[int, bytes] = {}
    for kind, payload in attributes(data, 0):
        out.setdefault(kind, payload)
    return out


def _counters(attrs: Dict[int, bytes]) -> TcCounters:
    out = TcCounters()
    stats2 = attrs.get(TCA_STATS2)
    if stats2 is not None:
        nest = _nested(stats2)
        basic = nest.get(TCA_STATS_BASIC, b"")
        if len(basic) >= 12:
            out.bytes, out.packets = struct.unpack_from("=QI", basic)
        pkt64 = _u64(nest.get(TCA_STATS_PKT64, b""))
        if pkt64 is not None:
            out.packets = pkt64
        queue = nest.get(TCA_STATS_QUEUE, b"")
        if len(queue) >= 20:
            out.backlog_packets, out.backlog_bytes, out.drops, out.requeues, out.overlimits = \
                struct.unpack_from("=5I", queue)
        return out
    old = attrs.get(TCA_STATS, b"")  # struct tc_stats: bytes u64, packets, drops, overlimits, bps, pps, qlen, backlog
    if len(old) >= 36:
        out.bytes, out.packets, out.drops, out.overlimits, _, _, out.backlog_packets, out.backlog_bytes = \
            struct.unpack_from("=QIIIIIII", old)
    return out


def _rate(ratespec: bytes, at: int, rate64: Optional[int]) -> Optional[int]:
    """tc_ratespec's rate (bytes/s) at `at`, or the 64-bit attribute that replaces it above 4 GB/s."""
    if rate64:
        return rate64
    return _u32(ratespec, at + 8)


def _limit(obj: TcObject, value: Optional[int], unit: str) -> None:
    if value is not None:
        obj.limit, obj.limit_unit = value, unit


def _shape(obj: TcObject, options: bytes) -> None:
    """Fill the rate and limit of the kinds that have them, from TCA_OPTIONS."""
    kind = obj.kind
    if kind in ("pfifo", "bfifo", "pfifo_head_drop"):  # struct tc_fifo_qopt, not nested
        _limit(obj, _u32(options, 0), "bytes" if kind == "bfifo" else "packets")
        return
    if kind == "sfq":  # struct tc_sfq_qopt: quantum, perturb_period, limit, ...
        _limit(obj, _u32(options, 8), "packets")
        return
    if kind == "netem":  # struct tc_netem_qopt: latency, limit, ... (then nested attributes)
        _limit(obj, _u32(options, 4), "packets")
        return
    nest = _nested(options)
    if kind == "tbf":
        parms = nest.get(1, b"")  # TCA_TBF_PARMS: tc_tbf_qopt = rate, peakrate, limit, buffer, mtu
        obj.rate_bytes_per_s = _rate(parms, 0, _u64(nest.get(4, b"")))  # TCA_TBF_RATE64
        _limit(obj, _u32(parms, 24), "bytes")
        buffer_ticks = _u32(parms, 28)
        if buffer_ticks is not None and obj.rate_bytes_per_s:
            # the kernel dumps the bucket as psched ticks of 64 ns: bytes = time * rate
            obj.burst_bytes = (buffer_ticks << 6) * obj.rate_bytes_per_s // 1_000_000_000
    elif kind == "htb" and obj.is_class:
        parms = nest.get(1, b"")  # TCA_HTB_PARMS: tc_htb_opt = rate, ceil, buffer, cbuffer, ...
        obj.rate_bytes_per_s = _rate(parms, 12, _u64(nest.get(7, b"")))  # the ceil: what it may borrow up to
    elif kind == "htb":
        _limit(obj, _u32(nest.get(5, b""), 0), "packets")  # TCA_HTB_DIRECT_QLEN
    elif kind == "hfsc" and obj.is_class:
        usc = nest.get(3, b"")  # TCA_HFSC_USC: tc_service_curve = m1, d, m2
        obj.rate_bytes_per_s = _u32(usc, 8) or None
    elif kind == "cake":
        obj.rate_bytes_per_s = _u64(nest.get(2, b"")) or None  # TCA_CAKE_BASE_RATE64; 0: unlimited
    elif kind in ("fq_codel", "codel", "pie", "fq_pie"):
        _limit(obj, _u32(nest.get(1 if kind == "fq_pie" else 2, b""), 0), "packets")
    elif kind == "fq":
        _limit(obj, _u32(nest.get(1, b""), 0), "packets")  # TCA_FQ_PLIMIT


def parse_tc(msg_type: int, body: bytes) -> Optional[TcObject]:
    """One RTM_NEWQDISC or RTM_NEWTCLASS answer, or None when it is not one or is malformed."""
    if msg_type not in (RTM_NEWQDISC, RTM_NEWTCLASS) or len(body) < TCMSG.size:
        return None
    _, ifindex, handle, parent, _ = TCMSG.unpack_from(body)
    attrs: Dict[int, bytes] = {}
    for kind, payload in attributes(body, TCMSG.size):
        attrs.setdefault(kind, payload)
    name = attrs.get(TCA_KIND, b"").split(b"\0", 1)[0]
    if not name or len(name) > 16 or not all(0x21 <= c < 0x7F for c in name):
        return None
    obj = TcObject(ifindex, name.decode("ascii"), handle, parent, msg_type == RTM_NEWTCLASS)
    obj.counters = _counters(attrs)
    _shape(obj, attrs.get(TCA_OPTIONS, b""))
    return obj


def _walk(data: bytes, depth: int) -> Iterator[Dict[int, bytes]]:
    """Every nest below `data` (depth-first, bounded), as {type: payload}: actions are found wherever the
    classifier (u32, matchall, flower, bpf...) keeps them."""
    if depth > MAX_NEST:
        return
    nest = _nested(data)
    if not nest:
        return
    yield nest
    for payload in nest.values():
        if len(payload) >= 4:
            yield from _walk(payload, depth + 1)


def _action(nest: Dict[int, bytes]) -> str:
    kind = nest.get(TCA_ACT_KIND, b"").split(b"\0", 1)[0]
    return kind.decode("ascii", "replace") if kind and len(kind) <= 16 else ""


def parse_filter(body: bytes) -> Tuple[List[Redirect], List[TcObject]]:
    """The mirred redirects and police actions of one RTM_NEWTFILTER answer."""
    if len(body) < TCMSG.size:
        return [], []
    _, ifindex, _, parent, _ = TCMSG.unpack_from(body)
    redirects, police = [], []
    for _, payload in attributes(body, TCMSG.size):
        for nest in _walk(payload, 0):
            kind = _action(nest)
            if kind == "mirred":
                parms = _nested(nest.get(TCA_ACT_OPTIONS, b"")).get(TCA_MIRRED_PARMS, b"")
                if len(parms) >= 28:  # struct tc_mirred: tc_gen (5 x 4 bytes), eaction, ifindex
                    eaction, target = struct.unpack_from("=iI", parms, 20)
                    redirects.append(Redirect(ifindex, target, MIRRED_ACTIONS.get(eaction, f"action {eaction}")))
            elif kind == "police":
                options = _nested(nest.get(TCA_ACT_OPTIONS, b""))
                tbf = options.get(TCA_POLICE_TBF, b"")  # struct tc_police: index, action, limit, burst, mtu, rate
                obj = TcObject(ifindex, "police", _u32(tbf, 0) or 0, parent)
                obj.rate_bytes_per_s = _rate(tbf, 20, _u64(options.get(TCA_POLICE_RATE64, b""))) or None
                obj.counters = _counters({TCA_STATS2: nest.get(TCA_ACT_STATS, b"")})
                police.append(obj)
    return redirects, police


@dataclass
class TcReading:
    """Every qdisc and class of this network namespace at one moment, and where ingress is redirected."""

    objects: List[TcObject] = field(default_factory=list)
    redirects: List[Redirect] = field(default_factory=list)
    problem: str = ""  # why the dump failed, when it did


def _tcmsg(ifindex: int = 0, parent: int = 0) -> bytes:
    return TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, parent, 0)


def read_tc() -> TcReading:
    """One reading: the qdisc dump, then classes and ingress filters of the devices that have them."""
    out = TcReading()
    try:
        answers = dump(RTM_GETQDISC, _tcmsg())
    except OSError as e:
        out.problem = f"RTM_GETQDISC: {e.strerror or e}"
        return out
    qdiscs = [q for q in (parse_tc(t, b) for t, b in answers) if q is not None]
    out.objects.extend(qdiscs)
    classful = sorted({q.ifindex for q in qdiscs if q.kind in CLASSFUL})[:MAX_DEVICES]
    ingress = sorted({(q.ifindex, q.handle if q.kind == "ingress" else TC_H_CLSACT_INGRESS)
                      for q in qdiscs if q.kind in INGRESS_KINDS})[:MAX_DEVICES]
    try:
        for ifindex in classful:
            out.objects.extend(c for c in (parse_tc(t, b) for t, b in dump(RTM_GETTCLASS, _tcmsg(ifindex)))
                               if c is not None)
        for ifindex, parent in ingress:
            for msg_type, body in dump(RTM_GETTFILTER, _tcmsg(ifindex, parent)):
                if msg_type == RTM_NEWTFILTER:
                    redirects, police = parse_filter(body)
                    out.redirects.extend(redirects)
                    out.objects.extend(police)
    except OSError as e:  # a device that went away between the dumps, or a refusal: what was read stands
        out.problem = f"class or filter dump: {e.strerror or e}"
    return out
