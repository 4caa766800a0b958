"""Live TCP connections held back by a buffer: the "small TCP buffers" check. doctor samples every connection in
its window (collect/flows.py); judge/flows.py gives each its `limited_by` and the fix sized to the path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List

from guestcheck.checks import FindingDoc
from guestcheck.facts import Facts, FlowReading
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged

if TYPE_CHECKING:  # imported when a flow is big enough to judge: doctor's start-up does not build the table
    from guestcheck.judge.flows import FlowVerdict

MIN_WINDOW_BYTES = 1 << 20  # a flow that moved less than 1 MiB in the window is not worth a finding
IDS = {"send-buffer": "FLOW-SNDBUF-LIMITED", "receive-window": "FLOW-RWND-LIMITED"}

FINDINGS = {
    "FLOW-SNDBUF-LIMITED": FindingDoc(
        "A TCP connection was held back by its send buffer",
        "warning",
        "tcp_info counts the time a connection spends limited by its own send buffer (tcpi_sndbuf_limited). A "
        "connection that moved at least 1 MiB during doctor's window, spent at least 20 % of its busy time so "
        "limited, and ran below 80 % of the path's rate (a shaper on the route, a physical NIC's link speed) is "
        "held back by net.ipv4.tcp_wmem's ceiling (or a SO_SNDBUF the application set): the buffer must hold a "
        "bandwidth-delay product of unacknowledged data. Without a known path rate the share must be 50 %. "
        "`guestcheck flows` shows every connection and the decision table (README).",
        "guestcheck tune apply wan --rate RATE --rtt RTT, sized to the path: RATE the path's rate, RTT the "
        "connection's min_rtt plus the delay a shaper's queue on the route can add (the RTT under load once the "
        "buffer no longer holds the flow), at least 1 ms (the finding gives both, with the arithmetic).",
    ),
    "FLOW-RWND-LIMITED": FindingDoc(
        "A TCP connection was held back by the receiver's window",
        "warning",
        "On the sending side, tcp_info counts the time limited by the peer's advertised receive window "
        "(tcpi_rwnd_limited); on the receiving side, which has no such counter, a connection whose receive buffer "
        "is at tcp_rmem's ceiling and that runs at 1/8 or more of what half that buffer allows over the RTT's "
        "floor (the smaller of rcv_rtt and min_rtt) is held by it. A connection that moved at least 1 MiB during "
        "doctor's window, so limited for at least 20 % of its busy time (sending side), and below 80 % of the "
        "path's rate, needs a larger receive buffer on the receiver: net.ipv4.tcp_rmem's ceiling there (or a "
        "SO_RCVBUF the application set). The share alone says little: 53 % was measured at 92 % of a shaped rate.",
        "On the receiver: guestcheck tune apply wan --rate RATE --rtt RTT, sized to the path (the finding says "
        "which machine, with the numbers).",
    ),
}


def _finding(v: FlowVerdict) -> Finding:
    f = v.flow
    fid = IDS[v.limited_by]
    rate = f"{v.rate_bps / 1e6:.1f} Mbit/s" if v.rate_bps is not None else "?"
    evidence: Dict[str, object] = {
        "local": f"{f.local}:{f.local_port}", "remote": f"{f.remote}:{f.remote_port}", "role": v.role,
        "rule": v.rule, "rate_bps": round(v.rate_bps) if v.rate_bps is not None else None,
        "bytes_in_window": f.bytes_acked + f.bytes_received, "sndbuf_limited_share": v.sndbuf_share,
        "rwnd_limited_share": v.rwnd_share, "min_rtt_us": f.min_rtt_us, "rcv_rtt_us": f.rcv_rtt_us,
        "sndbuf": f.sndbuf, "rcvbuf": f.rcvbuf, "arithmetic": v.arithmetic}
    on_peer = v.fix_on not in ("", "here")
    hint = v.arithmetic
    if on_peer:
        hint = f"Run the fix on the receiver ({f.remote}), not here: {v.fix}. {v.arithmetic}"
    if not v.fix:
        hint = ("The path's rate is unknown here (no shaper on the route, no physical NIC's speed): "
                "`guestcheck flows --rate RATE` prints the sized command.")
    return Finding(fid, Severity.WARNING, f"{f.remote}:{f.remote_port}",
                   f"{v.role} {f.local}:{f.local_port} -> {f.remote}:{f.remote_port} at {rate}: {v.why}",
                   evidence, "" if on_peer else v.fix, fix_on="guest" if v.fix and not on_peer else "", hint=hint)


def _moved_enough(flow: FlowReading) -> bool:
    return flow.bytes_acked + flow.bytes_received >= MIN_WINDOW_BYTES


def run(facts: Facts, judged: Judged) -> List[Finding]:
    if facts.flows is None or not facts.flows.available or not facts.flows.sampled:
        return []
    if not any(_moved_enough(f) for f in facts.flows.flows):
        return []  # nothing worth a finding: the decision table is not even loaded
    from guestcheck.judge.flows import judge_flows

    out = []
    for v in judge_flows(facts, judged).verdicts:
        if v.limited_by in IDS and _moved_enough(v.flow):
            out.append(_finding(v))
    return out
