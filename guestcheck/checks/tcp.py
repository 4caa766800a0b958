"""TCP: full listen queues, retransmissions (and the layer that likely caused them), and memory pressure."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from guestcheck.checks import FindingDoc
from guestcheck.facts import CounterRate, Facts, Ledger, Listener
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.judge.ledger import dropping_queues, qdisc_label, route_devices, shapers_on_path
from guestcheck.netaddr import bracketed
from guestcheck.text import shell_word

RETRANS_MIN_SEGMENTS = 10_000  # below this many segments sent in the window, a ratio means little
RETRANS_WARN_SHARE = 0.02  # a healthy, unshaped veth measured 0.89 % (reordering)
RETRANS_CRIT_SHARE = 0.10
SPURIOUS = ("TcpExtTCPDSACKRecv", "TcpExtTCPDSACKOfoRecv")  # a DSACK: the peer had the segment already
PRESSURE = ("TcpExtTCPMemoryPressures", "TcpExtPruneCalled", "TcpExtRcvPruned", "TcpExtTCPAbortOnMemory")
LISTEN_PROFILE = "many-connections"  # raises somaxconn and tcp_max_syn_backlog (a test holds the profile to it)

FINDINGS = {
    "TCP-LISTEN-OVERFLOW": FindingDoc(
        "Connections were refused because a listen queue was full",
        "warning",
        "ListenOverflows counts handshakes dropped because a listening socket's accept queue was full: the "
        "application did not accept() fast enough, or its queue is small. The queue is the backlog the "
        "application gave listen(), capped at net.core.somaxconn; half-open connections wait in a queue of "
        "net.ipv4.tcp_max_syn_backlog. Each drop costs the client a SYN retransmission: a second or more of "
        "delay on a new connection. ListenDrops includes these and other failures on the way in. A warning when "
        "it rose during the sample; the listening sockets with connections waiting are named (sock_diag: the "
        "accept queue against its limit).",
        "guestcheck tune apply many-connections (raises net.core.somaxconn and net.ipv4.tcp_max_syn_backlog, "
        "kept across reboots); then the application's own backlog (nginx `listen ... backlog=`, "
        "`SOMAXCONN`-sized in most servers) and a restart, since a listening socket keeps the queue it was "
        "opened with.",
    ),
    "TCP-RETRANSMITS": FindingDoc(
        "TCP retransmits a large share of what it sends",
        "warning",
        "RetransSegs against OutSegs over the sample, less the retransmissions the peer's DSACKs showed were "
        "spurious (reordering, not loss), and only when at least 10,000 segments were sent: above 2 % a warning, "
        "above 10 % critical. Every loss halves a CUBIC sender's window, so a few percent caps throughput well "
        "below the link. The likely layer is named from the other rows of the ledger: a shaper that is "
        "limiting, a queue that drops, NIC drops, or, with none of those, the path beyond this machine.",
        "Follow the layer it names: QDISC-SHAPED or QDISC-DROPS for a queue here, NIC-DROPS for the NIC; for "
        "the path beyond, `guestcheck selftest` against a peer near this machine tells the network from the "
        "far end.",
        fix_on="",
    ),
    "TCP-MEMORY-PRESSURE": FindingDoc(
        "TCP ran short of memory for its buffers",
        "warning",
        "TCPMemoryPressures counts entries into TCP's memory pressure state: all sockets together used more "
        "than net.ipv4.tcp_mem's second value (pages), and the kernel shrank buffers. PruneCalled and "
        "RcvPruned count receive queues it had to collapse or prune, TCPAbortOnMemory connections it reset for "
        "lack of memory. Throughput drops and connections stall or fail. net.ipv4.tcp_mem is the whole "
        "machine's (not a network namespace's) and sized by the kernel from RAM at boot.",
        "Raise net.ipv4.tcp_mem only where memory is guaranteed (sysctl -w net.ipv4.tcp_mem=\"MIN PRESSURE "
        "MAX\", each twice the present value, kept in /etc/sysctl.d/); otherwise smaller buffer ceilings "
        "(net.ipv4.tcp_rmem, tcp_wmem) or fewer, busier connections; look for receivers that do not read.",
    ),
}


def _rise(ledger: Ledger, name: str) -> int:
    rate = ledger.counters.get(name)
    return (rate.rise or 0) if rate is not None else 0


def retransmit_share(ledger: Ledger) -> Optional[Tuple[float, int, int, int]]:
    """(share, sent, retransmitted, spurious) over the window, or None when it cannot be judged."""
    sent_rate = ledger.counters.get("TcpOutSegs")
    if not ledger.sampled or sent_rate is None or sent_rate.rise is None:
        return None
    sent, retrans = sent_rate.rise, _rise(ledger, "TcpRetransSegs")
    spurious = min(retrans, sum(_rise(ledger, n) for n in SPURIOUS))
    if sent < RETRANS_MIN_SEGMENTS:
        return None
    return (retrans - spurious) / sent, sent, retrans, spurious


def likely_layer(facts: Facts) -> Tuple[str, Dict[str, object]]:
    """Where the losses most likely happen, from the other rows of the window."""
    ledger = facts.ledger
    routes = route_devices(facts)
    if ledger is not None:
        dropping = dropping_queues(ledger)
        if dropping:
            q = dropping[0]
            return f"qdisc drops on {q.device} ({qdisc_label(q)})", {"layer": "qdisc", "device": q.device}
        for q in shapers_on_path(facts):
            over = q.counters.get("overlimits")
            if over is not None and over.rise:
                return f"shaping on {q.device} ({qdisc_label(q)})", {"layer": "shaping", "device": q.device}
    for c in facts.nic_counters:
        rising = [k for k, r in {**c.interface, **c.driver}.items() if r.rise]
        if rising and (not routes or c.nic in routes):
            return f"NIC drops on {c.nic} ({', '.join(rising)})", {"layer": "nic", "device": c.nic}
    return "the path beyond this machine (nothing here dropped during the sample)", {"layer": "path"}


def listener_text(s: Listener) -> str:
    return f"{bracketed(s.address)}:{s.port} ({s.queued} waiting, limit {s.backlog})"


def _listen(ledger: Ledger) -> Optional[Finding]:
    rising = {n: r for n in ("TcpExtListenOverflows", "TcpExtListenDrops")
              if (r := ledger.counters.get(n)) is not None and r.rise}
    if "TcpExtListenOverflows" not in rising:
        return None
    over = rising["TcpExtListenOverflows"]
    full = [listener_text(s) for s in ledger.listeners if s.queued >= s.backlog]
    waiting = [listener_text(s) for s in ledger.listeners]
    evidence: Dict[str, object] = {
        "rising": {k: {"rise": r.rise, "per_s": r.per_s} for k, r in rising.items()},
        "full_listeners": full, "listeners_with_a_queue": waiting,
        "net.core.somaxconn": ledger.settings.get("net.core.somaxconn"),
        "net.ipv4.tcp_max_syn_backlog": ledger.settings.get("net.ipv4.tcp_max_syn_backlog")}
    named = f": {', '.join(full[:3])}" if full else (f"; queued now: {', '.join(waiting[:3])}" if waiting else "")
    return Finding("TCP-LISTEN-OVERFLOW", Severity.WARNING, "tcp",
                   f"listen queues overflowed +{over.rise} ({over.per_s:g}/s) during the sample{named}",
                   evidence, f"guestcheck tune apply {LISTEN_PROFILE}",
                   hint="A listening socket keeps the queue it was opened with: raise the application's own "
                        "backlog (listen()'s argument, capped at net.core.somaxconn) and restart it.")


def _retransmits(facts: Facts, ledger: Ledger) -> Optional[Finding]:
    judged = retransmit_share(ledger)
    if judged is None:
        return None
    share, sent, retrans, spurious = judged
    if share <= RETRANS_WARN_SHARE:
        return None
    where, layer = likely_layer(facts)
    severity = Severity.CRITICAL if share > RETRANS_CRIT_SHARE else Severity.WARNING
    return Finding("TCP-RETRANSMITS", severity, "tcp",
                   f"TCP retransmitted {share:.1%} of {sent} segments sent during the sample; likely: {where}",
                   {"sent": sent, "retransmitted": retrans, "spurious": spurious, "share": round(share, 4),
                    "likely": layer, "timeouts": _rise(ledger, "TcpExtTCPTimeouts")},
                   hint=f"Look at {where} first: " + FINDINGS["TCP-RETRANSMITS"].fix)


def tcp_mem_fix(ledger: Ledger) -> str:
    values = (ledger.settings.get("net.ipv4.tcp_mem") or "").split()
    if len(values) != 3 or not all(v.isascii() and v.isdigit() for v in values):
        return ""
    doubled = " ".join(str(2 * int(v)) for v in values)
    return (f"sysctl -w net.ipv4.tcp_mem={shell_word(doubled)}\n"
            f"cat > /etc/sysctl.d/60-guestcheck-tcp-mem.conf <<'EOF'\nnet.ipv4.tcp_mem = {doubled}\nEOF")


def _pressure(ledger: Ledger, judged: Judged) -> Optional[Finding]:
    rising: Dict[str, CounterRate] = {n: r for n in PRESSURE if (r := ledger.counters.get(n)) is not None and r.rise}
    if not rising:
        return None
    evidence = {"rising": {k: {"rise": r.rise, "per_s": r.per_s} for k, r in rising.items()},
                **{k: ledger.settings.get(k) for k in ("net.ipv4.tcp_mem", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")},
                "memory_guaranteed": judged.memory.guaranteed}
    what = ", ".join(f"{k} +{r.rise}" for k, r in rising.items())
    summary = f"TCP under memory pressure during the sample: {what}"
    if judged.memory.guaranteed:
        return Finding("TCP-MEMORY-PRESSURE", Severity.WARNING, "tcp", summary, evidence, tcp_mem_fix(ledger),
                       hint="tcp_mem is in pages, for all sockets together; the buffer ceilings are net.ipv4.tcp_rmem "
                            "and tcp_wmem.")
    return Finding("TCP-MEMORY-PRESSURE", Severity.WARNING, "tcp", summary, evidence,
                   hint="This machine's memory is not guaranteed (" + "; ".join(judged.memory.reasons[:2])
                        + "): do not raise net.ipv4.tcp_mem; lower the buffer ceilings (net.ipv4.tcp_rmem, tcp_wmem) "
                        "or find the receivers that do not read.")


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [
    ("TCP-LISTEN-OVERFLOW", ("sysctl:net.core.somaxconn", "sysctl:net.ipv4.tcp_max_syn_backlog")),
    ("TCP-MEMORY-PRESSURE", ("sysctl:net.ipv4.tcp_mem",)),
]


def run(facts: Facts, judged: Judged) -> List[Finding]:
    ledger = facts.ledger
    if ledger is None:
        return []
    found = [_listen(ledger), _retransmits(facts, ledger), _pressure(ledger, judged)]
    return [f for f in found if f is not None]
