"""Queueing disciplines: a shaper in the path (tbf, htb, hfsc, cake, police), and queues that drop packets."""

from __future__ import annotations

from typing import List, Optional

from guestcheck.checks import FindingDoc
from guestcheck.facts import Facts, Ledger, Qdisc
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.judge.ledger import is_leaf_queue, qdisc_label, shapers_on_path
from guestcheck.quantities import format_rate
from guestcheck.text import shell_word

# active queue management: dropping early is how it tells senders to slow down, not a queue that overflowed
AQM = ("fq_codel", "codel", "pie", "fq_pie", "cake", "red", "choke", "sfb")
FIFO = ("pfifo", "bfifo", "pfifo_head_drop")
ROOM_SECONDS = 0.02  # a tbf limit's new room: 20 ms at its rate, besides the bucket

FINDINGS = {
    "QDISC-SHAPED": FindingDoc(
        "A shaper caps the rate on the way out",
        "info",
        "A tbf, an htb class's ceil, an hfsc upper limit, cake's bandwidth or a police action on an interface "
        "that carries the default route (or on the ifb device its incoming traffic is redirected to) caps "
        "what any transfer can reach, whatever the NIC and the buffers allow: selftest and iperf3 top out at "
        "that rate. Often deliberate (a provider's or an admin's limit), so info while it is idle; a warning "
        "when it limited traffic during the sample (overlimits rose and packets queued behind it). Its queue "
        "also adds latency: the backlog divided by the rate.",
        "Nothing to run blindly: if the cap is not wanted, remove or raise it (tc qdisc del dev IFACE root, or "
        "tc qdisc change with a higher rate); `tc -s qdisc show dev IFACE` and `tc -s class show dev IFACE` "
        "show it.",
        fix_on="",
    ),
    "QDISC-DROPS": FindingDoc(
        "A queue dropped packets because it was full",
        "warning",
        "A qdisc drops a packet when its queue is at its limit: a tbf's byte limit, a fifo's packets, "
        "pfifo_fast's txqueuelen. Each drop costs a TCP sender a retransmission and halves its window. A "
        "warning when drops rose during the sample, info when they are in the counters since boot only. The "
        "drops of active queue management (fq_codel, codel, pie, cake) are its way of telling senders to slow "
        "down, so they are info. Counted on the leaf qdiscs only: mq, htb and other parents add their "
        "children's.",
        "For the kind that dropped: fq_codel in place of a plain fifo where the kernel has it (tc qdisc replace "
        "dev IFACE root fq_codel), else a larger limit (a tbf: room for 20 ms at its rate besides the bucket; a "
        "fifo: twice its limit; pfifo_fast: twice the txqueuelen, ip link set dev IFACE txqueuelen N). A tc "
        "change lasts until the qdisc is replaced or the machine reboots: keep it where the qdisc is set up.",
    ),
}


def _where(q: Qdisc) -> str:
    """`root` or `parent P handle H`, as tc takes them."""
    if q.parent == "root":
        return "root"
    if q.handle in ("0:", ""):  # a default qdisc the kernel attached (mq's children): no handle to name
        return f"parent {q.parent}"
    return f"parent {q.parent} handle {q.handle}"


def drops_fix(q: Qdisc, ledger: Ledger) -> str:
    """A command for the kind that dropped, or "" where none fits (a hint says what to do)."""
    dev = shell_word(q.device)
    where = _where(q)
    if q.kind in (*FIFO, "pfifo_fast") and ledger.qdisc_kinds.get("fq_codel"):
        return f"tc qdisc replace dev {dev} {where} fq_codel"
    if q.kind == "pfifo_fast" and q.limit:
        return f"ip link set dev {dev} txqueuelen {2 * q.limit}"
    if q.kind in FIFO and q.limit:
        return f"tc qdisc change dev {dev} {where} {q.kind} limit {2 * q.limit}"
    if q.kind == "tbf" and q.limit and q.rate_bytes_per_s and q.burst_bytes:
        limit = max(2 * q.limit, int(q.rate_bytes_per_s * ROOM_SECONDS) + q.burst_bytes)
        return (f"tc qdisc change dev {dev} {where} tbf rate {q.rate_bytes_per_s * 8}bit burst {q.burst_bytes} "
                f"limit {limit}")
    return ""


def _drops(q: Qdisc, ledger: Ledger) -> Optional[Finding]:
    drops = q.counters.get("drops")
    if drops is None or not drops.total or not is_leaf_queue(q):
        return None
    evidence = {"qdisc": qdisc_label(q), "drops_rise": drops.rise, "drops_per_s": drops.per_s,
                "drops_since_boot": drops.total, "limit": q.limit, "limit_unit": q.limit_unit,
                "backlog_bytes_peak": q.backlog_bytes_peak}
    limit = f"limit {q.limit} {q.limit_unit}" if q.limit is not None else "limit unknown"
    if q.kind in AQM:
        what = f"+{drops.rise} during the sample" if drops.rise else f"{drops.total} since boot"
        return Finding("QDISC-DROPS", Severity.INFO, q.device,
                       f"{qdisc_label(q)} dropped {what}: active queue management signalling congestion",
                       evidence, hint="Nothing to fix in the queue: these drops slow the senders down on purpose; "
                       "if they are many, the link is the bottleneck (see QDISC-SHAPED and selftest).")
    fix = drops_fix(q, ledger)
    hint = "" if fix else (f"raise the {q.kind} qdisc's limit where it is set up (tc qdisc change dev "
                           f"{shell_word(q.device)} {_where(q)} {q.kind} ... limit N)")
    if drops.rise:
        return Finding("QDISC-DROPS", Severity.WARNING, q.device,
                       f"{qdisc_label(q)} full: dropped +{drops.rise} ({drops.per_s:g}/s) during the sample, {limit}",
                       evidence, fix, hint=hint)
    return Finding("QDISC-DROPS", Severity.INFO, q.device,
                   f"{qdisc_label(q)} dropped {drops.total} since boot, none during the sample ({limit})",
                   evidence, hint="Sample under load (guestcheck doctor --sample 10) to see whether it still happens; "
                   + (f"the fix then: {fix}" if fix else hint))


def _shaped(facts: Facts) -> List[Finding]:
    out = []
    for q in shapers_on_path(facts):
        over = q.counters.get("overlimits")
        drops = q.counters.get("drops")
        rate = format_rate(q.rate_bytes_per_s * 8) if q.rate_bytes_per_s else "?"
        limiting = bool(over and over.rise) and q.backlog_bytes_peak > 0
        via = f" (ingress of {', '.join(q.ingress_of)} redirected here)" if q.ingress_of else ""
        evidence = {"qdisc": qdisc_label(q), "rate_bits_per_s": (q.rate_bytes_per_s or 0) * 8,
                    "overlimits_rise": over.rise if over else None,
                    "overlimits_since_boot": over.total if over else None,
                    "drops_rise": drops.rise if drops else None, "backlog_bytes_peak": q.backlog_bytes_peak,
                    "limit": q.limit, "limit_unit": q.limit_unit, "ingress_of": q.ingress_of}
        if q.backlog_bytes_peak and q.rate_bytes_per_s:
            evidence["queue_delay_ms"] = round(1000 * q.backlog_bytes_peak / q.rate_bytes_per_s, 1)
        inspect = f"tc -s qdisc show dev {shell_word(q.device)}; tc -s class show dev {shell_word(q.device)}"
        hint = (f"A cap of {rate} on {q.device}{via}. If it is not wanted: {inspect} shows it; remove it "
                f"(tc qdisc del dev {shell_word(q.device)} root) or raise its rate where it is set up.")
        if limiting:
            out.append(Finding("QDISC-SHAPED", Severity.WARNING, q.device,
                               f"{qdisc_label(q)} shapes to {rate}{via} and limited traffic during the sample: "
                               f"overlimits +{over.rise}, up to {q.backlog_bytes_peak} bytes queued",
                               evidence, hint=hint))
        else:
            total = over.total if over else 0
            out.append(Finding("QDISC-SHAPED", Severity.INFO, q.device,
                               f"{qdisc_label(q)} shapes to {rate}{via}; idle during the sample "
                               f"(overlimits {total} since it was set up)", evidence, hint=hint))
    return out


def run(facts: Facts, judged: Judged) -> list[Finding]:
    ledger = facts.ledger
    if ledger is None:
        return []
    out = _shaped(facts)
    for q in ledger.qdiscs:
        found = _drops(q, ledger)
        if found is not None:
            out.append(found)
    return out
