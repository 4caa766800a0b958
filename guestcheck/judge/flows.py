"""What holds each live TCP connection back: one `limited_by` per flow, from the decision table below (README
"guestcheck flows"), and the fix sized to the path, not to the flow.

The rows, first match wins. `rate` is the flow's throughput over the window (the larger direction), `path` the
path's rate (a shaper on the route, a physical NIC's link speed, or --rate), `busy` tcp_info's busy time.

| row | side | when | limited_by |
| S0/R0 | both | moved < 64 KiB in the window | none (idle) |
| S1/R1 | both | path known and rate >= 80 % of it | none (the path itself) |
| S2 | sender | sndbuf_limited >= 20 % of busy (50 % with no path rate), or path known and the
|    |        | send queue at sndbuf, at most half of it unsent, with < half the cwnd and peer's window
|    |        | in flight | send-buffer |
| S3 | sender | rwnd_limited >= 20 % of busy (50 % with no path rate) | receive-window (the peer's) |
| S4 | sender | retransmitted >= 1 % of the bytes sent | congestion |
| S5 | sender | busy < 50 % of the window, or the last delivery sample app-limited with nothing unsent | application |
| S6 | sender | path known (rate below 80 % of it) | congestion (the window against the path) |
| R2 | receiver | rcvbuf at tcp_rmem's max, rate >= 1/8 of rcvbuf/2 over min(rcv_rtt, min_rtt) | receive-window (here) |
| R3 | receiver | >= half the receive buffer's bytes unread (rqueue) | application (the reader) |
| S7/R4 | both | otherwise | none |

Why these numbers (issue 23's measurements): a receive-window share of 0.53 cost nothing at 92 % of a shaped rate,
and 0.35 came with a 45x loss, so a share alone decides nothing while the flow runs near the path (S1 first); a
send buffer on a veth below the GSO size shows a share of 0.02 at 95.6 % of the rate (S1 again). The receiving side
has no limited counters and its tcpi_rtt is a few us, so R2 uses the buffer and the RTT's floor: a socket
advertises about half its receive buffer, and a flow that runs at a real share of what that window allows over the
floor is held by it. The floor is the smaller of rcv_rtt and min_rtt: rcv_rtt alone counts a paced sender's idle
gaps (bench/flows_verdicts.py's `iperf3 -b 10M` receiver read 51 to 104 ms on a 0.5 ms path and was judged
receive-window at 1 % of the path); a flow far below what its window allows is not held by it. Measured: the true
receive-window receiver (tcp_rmem 4096) runs at 10 to 18 % of its window's allowance, the paced one at 0.001 %.
And a buffer below tcp_rmem's ceiling can still grow (autotuning sizes it to the flow's rate, so on a long path a
paced flow's buffer always looks just big enough): only one at the ceiling holds the flow, and only then does the
fix, which raises that ceiling, change anything (a buffer an application set with SO_RCVBUF is the application's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from guestcheck.facts import Facts, FlowReading
from guestcheck.judge import Judged
from guestcheck.judge.ledger import qdisc_label, route_devices, shapers_on_path
from guestcheck.quantities import format_rate, triple_max

LIMITS = ("send-buffer", "receive-window", "congestion", "application", "none")
HELD_BACK = ("send-buffer", "receive-window", "congestion")  # `flows` exits 1 for these; application is its own pace
MIN_MOVED = 64 << 10  # bytes in the window: below, a flow is idle, whatever its counters say
NEAR_PATH = 0.8  # at or above this share of the path's rate, the path itself is the limit
LIMITED_SHARE = 0.2  # of the busy time, with the path's rate known (and the flow below NEAR_PATH of it)
LIMITED_SHARE_NO_PATH = 0.5  # without a path rate: only a limit that held most of the time
RETRANS_SHARE = 0.01  # retransmitted bytes against bytes sent
APP_BUSY_SHARE = 0.5  # busy for less than this share of the window: the sender had nothing to send
RCV_WINDOW_SHARE = 0.5  # a socket advertises about half its receive buffer (tcp_adv_win_scale 1; 6.6+ per socket)
RCV_RTT_SLACK = 8  # R2: the flow runs at 1/8 or more of what its window allows over the RTT's floor (the RTT
# under load may be several times the floor: a window-bound flow runs at floor/RTT of what the floor allows)
NO_RTT_SAMPLE = 0xFFFFFFFF  # tcp_min_rtt() with no sample (~0U)
UNREAD_SHARE = 0.5  # the receive queue holds this share of the buffer: the application does not read
BUFFER_FACTOR = 2  # tune sizes a buffer ceiling to about 2 x BDP (README "Buffers sized to the path")
FIXABLE = ("send-buffer", "receive-window")
# The smallest RTT a fix is sized to. A flow's RTT of microseconds (a veth, loopback, a peer on the same host)
# measures the stack, not a path: a buffer sized to 1 Gbit/s x 30 us is 7.5 kB, below the kernel's own 128 KiB
# default, and the "fix" would set a ceiling under the default it means to raise. 1 ms is where a 1 Gbit/s BDP
# (125 kB) meets that default, and a LAN's RTT is 0.1 to 1 ms: sized to it, the ceiling covers any LAN at the rate.
MIN_FIX_RTT_US = 1000


@dataclass(frozen=True)
class PathRate:
    """The path's rate, and where it comes from."""

    bps: float
    source: str  # "tbf on eth0 (QDISC-SHAPED)", "eth0's link speed", "--rate"
    queue_us: Optional[int] = None  # the delay the shaper's queue can add (its byte limit over its rate)


@dataclass(frozen=True)
class FlowVerdict:
    flow: FlowReading
    role: str  # sender | receiver
    limited_by: str  # one of LIMITS
    rule: str  # the table's row: S0 ... R4
    why: str  # one line, with the numbers
    rate_bps: Optional[float]  # over the window (the larger direction); None when not sampled
    sent_bps: Optional[float]
    received_bps: Optional[float]
    busy_share: Optional[float]  # busy time / window
    rwnd_share: Optional[float]  # of the busy time
    sndbuf_share: Optional[float]
    retrans_share: Optional[float]  # retransmitted / sent bytes
    fix: str = ""  # the command, for send-buffer and receive-window with a path rate
    fix_on: str = ""  # where it runs: "here" or "the receiver, REMOTE"
    arithmetic: str = ""  # BDP = ...

    @property
    def held_back(self) -> bool:
        return self.limited_by in HELD_BACK


@dataclass(frozen=True)
class FlowsVerdict:
    path: Optional[PathRate]
    verdicts: Tuple[FlowVerdict, ...]  # busiest first
    notes: Tuple[str, ...] = field(default=())

    def counts(self) -> Dict[str, int]:
        out = {k: 0 for k in LIMITS}
        for v in self.verdicts:
            out[v.limited_by] += 1
        return out


def path_rate(facts: Facts, judged: Optional[Judged], given_bps: Optional[float] = None) -> Optional[PathRate]:
    """The path's rate, in order: a shaper on the route, a physical NIC's link speed, --rate."""
    shapers = [q for q in shapers_on_path(facts) if q.rate_bytes_per_s]
    if shapers:
        q = min(shapers, key=lambda s: s.rate_bytes_per_s or 0)
        queue_us = (math.ceil(q.limit * 1e6 / q.rate_bytes_per_s)
                    if q.limit and q.limit_unit == "bytes" and q.rate_bytes_per_s else None)
        return PathRate(float((q.rate_bytes_per_s or 0) * 8), f"{qdisc_label(q)} on {q.device} (QDISC-SHAPED)",
                        queue_us)
    if judged is not None:
        devices = route_devices(facts)
        speeds = [(n.speed_mbps, n.name) for n in facts.nics
                  if n.name in devices and n.speed_mbps and n.speed_mbps > 0
                  and judged.kind(n) in ("physical", "sriov-vf")]
        if speeds:
            mbps, name = min(speeds)
            return PathRate(mbps * 1e6, f"{name}'s link speed")
    if given_bps:
        return PathRate(given_bps, "--rate")
    return None


def _share(part: Optional[int], whole: Optional[int]) -> Optional[float]:
    if part is None or not whole:
        return None
    return min(part / whole, 1.0)


def rate_argument(bps: float) -> str:
    """A rate as `tune --rate` reads it: whole units where they divide, else Mbit/s to 3 decimals."""
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bps >= size and float(bps) % size == 0:
            return f"{int(bps) // size}{unit}"
    return f"{math.ceil(bps / 1e3) / 1e3:g}M"


def rtt_argument(us: int) -> str:
    """An RTT as `tune --rtt` reads it: milliseconds, rounded up to the microsecond."""
    return f"{max(us, 1) / 1000:.3f}".rstrip("0").rstrip(".") + "ms"


def sized_fix(limited_by: str, flow: FlowReading, role: str, path: Optional[PathRate]) -> Tuple[str, str, str]:
    """(command, where it runs, arithmetic) for a buffer verdict. The RTT is the flow's min_rtt (rcv_rtt on the
    receiving side, whose own RTT estimate is near 0), plus the delay a shaper's queue on the path can add, at least
    MIN_FIX_RTT_US. The queue: once the window no longer holds the flow, the flow fills the shaper's queue and its RTT
    under load is min_rtt plus that queue (measured behind a 1 Gbit/s tbf with a 20 ms bound: smoothed RTT 1.4 to 4.6
    ms after the fix, and a fix sized to min_rtt left the sender receive-window-limited 41 to 56 % of the time, one
    sized to the queue 2 to 3 %)."""
    measured = flow.rcv_rtt_us if role == "receiver" else flow.min_rtt_us
    if limited_by not in FIXABLE or path is None or not measured:
        return "", "", ""
    queue = path.queue_us or 0
    rtt = max(measured + queue, MIN_FIX_RTT_US)
    rate, rtt_text = rate_argument(path.bps), rtt_argument(rtt)
    bdp = math.ceil(path.bps / 8 * rtt / 1e6)
    where = "here" if (limited_by == "send-buffer" or role == "receiver") else f"the receiver, {flow.remote}"
    source = "rcv_rtt" if role == "receiver" else "min_rtt"
    if queue or measured < MIN_FIX_RTT_US:
        source = f"{source} {measured} us"
    if queue:
        source = f"{source} + {queue} us the shaper's queue can add under load"
    if measured + queue < MIN_FIX_RTT_US:
        source = (f"{source}, raised to {MIN_FIX_RTT_US // 1000} ms: a RTT of microseconds is this host's stack, "
                  "not a path")
    arithmetic = (f"BDP = {format_rate(path.bps)} ({path.source}) / 8 x {rtt_text} "
                  f"({source}) = {bdp} bytes; the "
                  f"{'tcp_wmem' if limited_by == 'send-buffer' else 'tcp_rmem'} ceiling becomes about "
                  f"{BUFFER_FACTOR} x BDP = {BUFFER_FACTOR * bdp} bytes or more (`guestcheck tune diff wan --rate "
                  f"{rate} --rtt {rtt_text}` shows the exact sizes)")
    return f"guestcheck tune apply wan --rate {rate} --rtt {rtt_text}", where, arithmetic


def send_queue_full(flow: FlowReading) -> bool:
    """SKMEMINFO's send-buffer test, for kernels whose tcpi_sndbuf_limited stays 0: the Debian 12 guest (6.1) with
    tcp_wmem 4096 over 20 ms sent 21 Mbit/s with wmem_queued 66440 of sndbuf 4096 (one GSO skb past the limit), cwnd
    775 x 1448 bytes, and counted 0 us send-buffer-limited. The queue at its limit, holding mostly sent data, while
    less than half the cwnd is in flight: the buffer, not the congestion or receive window, bounds the flow. A queue
    full of unsent bytes waits for the network (the cwnd, pacing, a qdisc pushing back), not for buffer space:
    four streams through a 1 ms tbf queue at 100 Mbit/s filled their queues 99 % unsent with 48 to 62 segments of
    cwnd, which is congestion (bench/flows_verdicts.py)."""
    if not flow.sndbuf or flow.wmem_queued_peak is None or not flow.snd_cwnd or not flow.snd_mss:
        return False
    queued, unsent = flow.wmem_queued or 0, flow.notsent_bytes or 0
    in_flight = max(queued - unsent, 0)
    window = flow.snd_cwnd * flow.snd_mss
    return flow.wmem_queued_peak >= flow.sndbuf and unsent * 2 <= queued and in_flight < window / 2 and (
        not flow.snd_wnd or in_flight < flow.snd_wnd / 2)


def receiver_rtt_floor(flow: FlowReading) -> Optional[int]:
    """The receiving side's RTT floor: the smaller of rcv_rtt and min_rtt. rcv_rtt is the time to receive a window's
    worth of data, so a paced sender's idle gaps inflate it (51 to 104 ms under `iperf3 -b 10M` on a 0.5 ms path);
    min_rtt is the connection's lowest RTT sample (on a receiver that sends nothing, the handshake's)."""
    known = [us for us in (flow.rcv_rtt_us, flow.min_rtt_us) if us and us < NO_RTT_SAMPLE]
    return min(known) if known else None


def judge_flow(flow: FlowReading, path: Optional[PathRate], rmem_ceiling: Optional[int] = None) -> FlowVerdict:
    """One flow against the table in this module's docstring; rmem_ceiling is net.ipv4.tcp_rmem's maximum, when
    read."""
    seconds = flow.seconds
    sent_bps = flow.bytes_acked * 8 / seconds if seconds > 0 else None
    received_bps = flow.bytes_received * 8 / seconds if seconds > 0 else None
    role = "sender" if flow.bytes_acked >= flow.bytes_received else "receiver"
    rate = (sent_bps if role == "sender" else received_bps)
    busy_share = min(flow.busy_us / (seconds * 1e6), 1.0) if flow.busy_us is not None and seconds > 0 else None
    rwnd = _share(flow.rwnd_limited_us, flow.busy_us)
    sndbuf = _share(flow.sndbuf_limited_us, flow.busy_us)
    retrans = _share(flow.bytes_retrans, flow.bytes_sent)
    moved = flow.bytes_acked + flow.bytes_received
    threshold = LIMITED_SHARE if path is not None else LIMITED_SHARE_NO_PATH
    below = "" if path is None or rate is None else f" at {rate / path.bps:.0%} of the path's {format_rate(path.bps)}"

    def verdict(limited_by: str, rule: str, why: str) -> FlowVerdict:
        fix, where, arithmetic = sized_fix(limited_by, flow, role, path)
        return FlowVerdict(flow, role, limited_by, rule, why, rate, sent_bps, received_bps, busy_share, rwnd, sndbuf,
                           retrans, fix, where, arithmetic)

    side = "S" if role == "sender" else "R"
    if moved < MIN_MOVED:
        return verdict("none", f"{side}0", f"idle: {moved} bytes in the window")
    if path is not None and rate is not None and rate >= NEAR_PATH * path.bps:
        return verdict("none", f"{side}1", f"runs at {rate / path.bps:.0%} of the path's {format_rate(path.bps)} "
                                           f"({path.source})")
    if role == "sender":
        if sndbuf is not None and sndbuf >= threshold:
            return verdict("send-buffer", "S2", f"send-buffer-limited {sndbuf:.0%} of the busy time{below}; sndbuf "
                                                f"{flow.sndbuf} bytes")
        if path is not None and send_queue_full(flow):
            return verdict("send-buffer", "S2", f"the send queue reached its limit ({flow.wmem_queued_peak} of "
                                                f"{flow.sndbuf} bytes) with {flow.snd_cwnd} x {flow.snd_mss} bytes of "
                                                f"cwnd{below}: the buffer, not the window, bounds what is in flight")
        if rwnd is not None and rwnd >= threshold:
            return verdict("receive-window", "S3", f"the peer's receive window limited {rwnd:.0%} of the busy "
                                                   f"time{below}; its window {flow.snd_wnd} bytes")
        if retrans is not None and retrans >= RETRANS_SHARE:
            return verdict("congestion", "S4", f"retransmitted {retrans:.1%} of the bytes sent{below}, cwnd "
                                               f"{flow.snd_cwnd}: see doctor's ledger (TCP-RETRANSMITS) and selftest")
        unsent = flow.notsent_bytes or 0
        if (busy_share is not None and busy_share < APP_BUSY_SHARE) or (flow.app_limited and unsent == 0):
            busy = f"busy {busy_share:.0%} of the window" if busy_share is not None else "app-limited"
            return verdict("application", "S5", f"{busy}, nothing waiting to be sent: the application wrote "
                                                "no faster")
        if path is not None and rate is not None:
            return verdict("congestion", "S6", f"busy, no buffer or window limit, cwnd {flow.snd_cwnd}{below}: "
                                               "the congestion window against the path (see the ledger, selftest)")
        return verdict("none", "S7", "no limit the kernel counts")
    buffer, floor = flow.rcvbuf, receiver_rtt_floor(flow)
    grows = rmem_ceiling is not None and buffer is not None and buffer < rmem_ceiling
    if rate is not None and rate > 0 and buffer and floor and not grows:
        allows = RCV_WINDOW_SHARE * buffer * 8 / (floor / 1e6)  # what the window allows over the RTT's floor
        if rate * RCV_RTT_SLACK >= allows:
            return verdict("receive-window", "R2", f"its window (half of a {buffer}-byte receive buffer) allows "
                                                   f"{format_rate(allows)} over {floor} us (min of rcv_rtt "
                                                   f"{flow.rcv_rtt_us} us and min_rtt {flow.min_rtt_us} us); it "
                                                   f"runs at {rate / allows:.0%} of that, 1/{RCV_RTT_SLACK} or "
                                                   f"more{below}")
    if buffer and flow.rqueue >= UNREAD_SHARE * buffer:
        return verdict("application", "R3", f"{flow.rqueue} of {buffer} receive-buffer bytes unread: the "
                                            "application reads no faster")
    return verdict("none", "R4", "nothing this side counts holds it (judge the sender for more)")


def rmem_ceiling(facts: Facts) -> Optional[int]:
    """net.ipv4.tcp_rmem's maximum as the ledger read it, or None."""
    return triple_max(facts.ledger.settings.get("net.ipv4.tcp_rmem") if facts.ledger is not None else None)


def judge_flows(facts: Facts, judged: Optional[Judged], given_bps: Optional[float] = None) -> FlowsVerdict:
    """Every flow of facts.flows, busiest first, against one path rate."""
    if facts.flows is None or not facts.flows.available:
        return FlowsVerdict(path_rate(facts, judged, given_bps), ())
    path = path_rate(facts, judged, given_bps)
    ceiling = rmem_ceiling(facts)
    verdicts = tuple(judge_flow(f, path, ceiling) for f in facts.flows.flows)
    notes: List[str] = []
    if path is None:
        notes.append("the path's rate is unknown (no shaper on the route, no physical NIC's speed): pass --rate "
                     "for sized fixes and the rate test of the table")
    if not facts.flows.sampled:
        notes.append("not sampled (--sample 0): counts since each connection began, no rates")
    return FlowsVerdict(path, verdicts, tuple(notes))
