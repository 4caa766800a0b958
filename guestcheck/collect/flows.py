"""Live TCP connections over the window: each connection's tcp_info and SKMEMINFO at both ends of the counter
sample (collect/counters.py reads them with sock_diag, guestcheck/sockdiag.py), paired by the kernel's socket
cookie, as facts.FlowReading records: rises of the cumulative counts, the second reading's levels. Nothing is
judged here (judge/flows.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from guestcheck.collect.area import Run
from guestcheck.facts import FlowReading, Flows

if TYPE_CHECKING:  # the decoders load with the first connection decoded (start-up: guestcheck/tcpinfo.py)
    from guestcheck.sockdiag import TcpFlow
    from guestcheck.tcpinfo import TcpInfo

AREA = "flows"
SAMPLED = True
MAX_FLOWS = 512  # kept in the facts, busiest first: a facts file stays small on a server of 10,000 connections


def _rise(before: Optional[int], after: Optional[int]) -> Optional[int]:
    if after is None:
        return None
    if before is None:
        return after
    return after - before if after >= before else None  # a 64-bit count does not wrap: gone backwards = reused


def _count(before: Optional[int], after: Optional[int]) -> int:
    return _rise(before, after) or 0


def reading(flow: TcpFlow, info: TcpInfo, old: Optional[TcpInfo], old_flow: Optional[TcpFlow],
            seconds: float) -> FlowReading:
    """One connection's record from its two readings (`old` None: counts since the connection began)."""
    from guestcheck.tcpinfo import TcpInfo

    o = old if old is not None else TcpInfo()
    mem, old_mem = flow.meminfo, old_flow.meminfo if old_flow is not None else None
    queued = [m.wmem_queued for m in (mem, old_mem) if m is not None and m.wmem_queued is not None]
    return FlowReading(
        family=flow.family, local=flow.local, local_port=flow.local_port, remote=flow.remote,
        remote_port=flow.remote_port, state=flow.state, cong=flow.cong or "", seconds=round(seconds, 3),
        bytes_acked=_count(o.bytes_acked, info.bytes_acked), bytes_received=_count(o.bytes_received,
                                                                                   info.bytes_received),
        bytes_sent=_rise(o.bytes_sent, info.bytes_sent), bytes_retrans=_rise(o.bytes_retrans, info.bytes_retrans),
        total_retrans=_count(o.total_retrans, info.total_retrans),
        busy_us=_rise(o.busy_time, info.busy_time), rwnd_limited_us=_rise(o.rwnd_limited, info.rwnd_limited),
        sndbuf_limited_us=_rise(o.sndbuf_limited, info.sndbuf_limited),
        rtt_us=info.rtt, rttvar_us=info.rttvar, min_rtt_us=info.min_rtt, rcv_rtt_us=info.rcv_rtt,
        rcv_space=info.rcv_space, snd_cwnd=info.snd_cwnd, snd_mss=info.snd_mss, snd_wnd=info.snd_wnd,
        delivery_rate=info.delivery_rate, app_limited=info.app_limited, notsent_bytes=info.notsent_bytes,
        rqueue=flow.rqueue,
        rmem_alloc=mem.rmem_alloc if mem else None, rcvbuf=mem.rcvbuf if mem else None,
        wmem_queued=mem.wmem_queued if mem else None, sndbuf=mem.sndbuf if mem else None,
        wmem_queued_peak=max(queued) if queued else None,
        sk_drops=_rise(old_mem.drops if old_mem else None, mem.drops if mem else None) if mem else None,
    )


def flows_over(before: Sequence[TcpFlow], after: Sequence[TcpFlow], seconds: float, sampled: bool,
               limit: Optional[int] = MAX_FLOWS) -> Flows:
    """The connections of the second reading that moved data since the first (with `sampled` False, `before`
    is ignored and counts run from each connection's start). Only flows that moved data are decoded in full:
    an idle connection costs a look at its two byte counts."""
    old: Dict[int, TcpFlow] = {f.cookie: f for f in before} if sampled else {}
    moving = []
    for flow in after:
        now = flow.volume()
        if now is None:
            continue
        prev = old.get(flow.cookie)
        was = prev.volume() if prev is not None else None
        if was is not None and was[0] <= now[0] and was[1] <= now[1]:
            moved = now[0] - was[0] + now[1] - was[1]
        else:
            prev, moved = None, now[0] + now[1]  # new in the window (or a reused cookie): since it began
        if moved > 0:
            moving.append((moved, flow, prev))
    moving.sort(key=lambda m: -m[0])
    kept = moving if limit is None else moving[:limit]
    out: List[FlowReading] = []
    for _, flow, prev in kept:
        info = flow.info
        if info is not None:
            out.append(reading(flow, info, prev.info if prev is not None else None, prev, seconds if sampled else 0))
    return Flows(available=True, sampled=sampled, seconds=round(seconds, 3) if sampled else 0.0,
                 connections=len(after), flows=out, capped=len(moving) - len(kept))


def collect(run: Run) -> Optional[Flows]:
    sample = run.counters
    before: Any = sample.before.flows if sample is not None else None
    after: Any = sample.after.flows if sample is not None else None
    if after is None:
        return None  # not read (a fake tree, or facts from a test)
    if isinstance(after, str) or isinstance(before, str):
        return Flows(reason_unavailable=f"sock_diag could not be read: {after if isinstance(after, str) else before}")
    sampled = sample.after is not sample.before
    return flows_over(before or [], after, sample.seconds, sampled)
