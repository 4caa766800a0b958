"""UDP: datagrams lost because a socket's buffer was full, and datagrams to ports nobody listens on."""

from __future__ import annotations

from typing import Dict, List, Optional

from guestcheck.checks import FindingDoc
from guestcheck.checks.fixes import sysctl_lines
from guestcheck.facts import CounterRate, Facts, Ledger
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.judge.ledger import dropping_queues
from guestcheck.quantities import maybe_int

FAST_PER_S = 1000.0  # UDP-SNDBUF-ERRORS and UDP-NO-PORT are info below this rate, warnings at or above it
RMEM_DEFAULT_FLOOR = 1 << 20  # what a socket that never sets SO_RCVBUF gets, at least, after the fix
RMEM_MAX_FLOOR = 16 << 20  # the ceiling SO_RCVBUF may ask for (the throughput profile's)
WMEM_DEFAULT_FLOOR = 1 << 20
WMEM_MAX_FLOOR = 16 << 20
CEILINGS_PROFILE = "throughput"  # raises net.core.rmem_max and wmem_max (a test holds the profile to it)

FINDINGS = {
    "UDP-RCVBUF-ERRORS": FindingDoc(
        "UDP datagrams dropped because the receiving socket's buffer was full",
        "warning",
        "UdpRcvbufErrors (Udp6RcvbufErrors for IPv6) counts datagrams the kernel threw away because the socket "
        "they were for had its receive buffer full: the application did not read fast enough for the burst. A "
        "socket's buffer is SO_RCVBUF when the application sets it (capped at net.core.rmem_max), else "
        "net.core.rmem_default (212992 bytes on most kernels: about a hundred 1500-byte datagrams). DNS servers, "
        "syslog, QUIC and media receivers lose data this way without any error reaching them. A warning when it "
        "rose during the sample.",
        "sysctl -w net.core.rmem_default=N net.core.rmem_max=M (N at least 1 MiB and twice the present "
        "value, M at least 16 MiB), kept in /etc/sysctl.d/; applications that set SO_RCVBUF need their own "
        "setting raised (up to rmem_max); `guestcheck tune apply throughput` raises the ceilings. Sockets "
        "take the new default when they are opened: restart the application.",
    ),
    "UDP-SNDBUF-ERRORS": FindingDoc(
        "UDP sends failed because the socket's send buffer was full",
        "info",
        "UdpSndbufErrors counts sends that failed with ENOBUFS/EAGAIN because the socket's send buffer "
        "(SO_SNDBUF, else net.core.wmem_default) was full: the application sends faster than the device and "
        "its qdisc drain. Most applications retry, so it is info, and a warning at 1000 a second or more.",
        "sysctl -w net.core.wmem_default=N net.core.wmem_max=M (N at least 1 MiB, M at least 16 MiB), kept in "
        "/etc/sysctl.d/; or pace the sender.",
    ),
    "UDP-NO-PORT": FindingDoc(
        "UDP datagrams arrived for ports nothing listens on",
        "info",
        "UdpNoPorts counts datagrams to a port no socket is bound to: a service that is down, a client sending "
        "to the wrong port, or scans. The kernel answers with ICMP port unreachable (rate-limited). Info, and a "
        "warning at 1000 a second or more: then a service that should be there is missing, or traffic is "
        "wasted on this machine.",
        "Nothing to run: find the port (tcpdump -ni IFACE udp), then start the service or fix the sender.",
        fix_on="",
    ),
}


def _rising(ledger: Ledger, *names: str) -> Dict[str, CounterRate]:
    return {n: r for n in names if (r := ledger.counters.get(n)) is not None and r.rise}


def _setting(ledger: Ledger, key: str) -> Optional[int]:
    return maybe_int(ledger.settings.get(key))


def buffer_fix(ledger: Ledger, kind: str) -> str:
    """Raise the default and the ceiling of one direction's socket buffers (kind: rmem | wmem), now and kept."""
    default_floor, max_floor = ((RMEM_DEFAULT_FLOOR, RMEM_MAX_FLOOR) if kind == "rmem"
                                else (WMEM_DEFAULT_FLOOR, WMEM_MAX_FLOOR))
    default = _setting(ledger, f"net.core.{kind}_default") or 0
    ceiling = _setting(ledger, f"net.core.{kind}_max") or 0
    new_default = max(default_floor, 2 * default)
    new_max = max(max_floor, ceiling, new_default)
    # the ceiling first: the kernel refuses a default above the present ceiling
    return "\n".join(sysctl_lines({f"net.core.{kind}_max": new_max, f"net.core.{kind}_default": new_default},
                                  f"udp-{kind}"))


def _what(rising: Dict[str, CounterRate]) -> str:
    return ", ".join(f"{k} +{r.rise} ({r.per_s:g}/s)" for k, r in rising.items())


def run(facts: Facts, judged: Judged) -> List[Finding]:
    ledger = facts.ledger
    if ledger is None:
        return []
    out = []
    settings = {k: ledger.settings.get(k) for k in ("net.core.rmem_default", "net.core.rmem_max",
                                                     "net.core.wmem_default", "net.core.wmem_max")}
    rcv = _rising(ledger, "UdpRcvbufErrors", "Udp6RcvbufErrors")
    if rcv:
        out.append(Finding(
            "UDP-RCVBUF-ERRORS", Severity.WARNING, "udp",
            f"UDP receive buffers full: {_what(rcv)} during the sample",
            {"rising": {k: {"rise": r.rise, "per_s": r.per_s} for k, r in rcv.items()}, **settings,
             "or": f"guestcheck tune apply {CEILINGS_PROFILE}  (raises net.core.rmem_max, persisted)"},
            buffer_fix(ledger, "rmem"),
            hint="An application that sets SO_RCVBUF keeps its own size (capped at net.core.rmem_max): raise it "
                 "there. Sockets take a new default when they are opened: restart the receiver."))
    snd = _rising(ledger, "UdpSndbufErrors", "Udp6SndbufErrors")
    if snd:
        fast = any((r.per_s or 0) >= FAST_PER_S for r in snd.values())
        evidence = {"rising": {k: {"rise": r.rise, "per_s": r.per_s} for k, r in snd.items()}, **settings}
        dropping = [f"{q.device} ({q.kind})" for q in dropping_queues(ledger)]
        if dropping:  # a qdisc that drops answers the send with ENOBUFS, which UDP counts here too
            evidence["qdisc_drops"] = dropping
            out.append(Finding(
                "UDP-SNDBUF-ERRORS", Severity.WARNING if fast else Severity.INFO, "udp",
                f"UDP sends failed: {_what(snd)} during the sample, while {', '.join(dropping)} dropped: a full "
                "queue fails the send with ENOBUFS, counted here too",
                evidence, hint="See QDISC-DROPS: the queue, not the socket's buffer, is what is full."))
        else:
            out.append(Finding(
                "UDP-SNDBUF-ERRORS", Severity.WARNING if fast else Severity.INFO, "udp",
                f"UDP sends failed on a full send buffer: {_what(snd)} during the sample",
                evidence, buffer_fix(ledger, "wmem")))
    noport = _rising(ledger, "UdpNoPorts", "Udp6NoPorts")
    if noport:
        fast = any((r.per_s or 0) >= FAST_PER_S for r in noport.values())
        out.append(Finding(
            "UDP-NO-PORT", Severity.WARNING if fast else Severity.INFO, "udp",
            f"UDP datagrams to ports nothing listens on: {_what(noport)} during the sample",
            {"rising": {k: {"rise": r.rise, "per_s": r.per_s} for k, r in noport.items()}},
            hint=FINDINGS["UDP-NO-PORT"].fix))
    return out


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [
    ("UDP-RCVBUF-ERRORS", ("sysctl:net.core.rmem_default", "sysctl:net.core.rmem_max")),
    ("UDP-SNDBUF-ERRORS", ("sysctl:net.core.wmem_default", "sysctl:net.core.wmem_max")),
]
