"""The kernel's drop reasons (doctor --drops): drops that no counter shows, the firewall's first."""

from __future__ import annotations

from typing import List

from guestcheck.checks import FindingDoc
from guestcheck.facts import Facts
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.judge.dropreasons import NO_COUNTER_FINDING, ReasonTotal, reason_totals

SCOPE = "machine-wide: every network namespace of this kernel, not this one's alone"

FINDINGS = {
    "FIREWALL-DROPS": FindingDoc(
        "The firewall dropped packets",
        "warning",
        "With `doctor --drops`, the kernel's own reason for every packet freed during the window is counted "
        "(the skb:kfree_skb tracepoint, Linux 5.17 and later). NETFILTER_DROP is a packet an nftables or "
        "iptables rule dropped: no counter of /proc/net/snmp or netstat moves for it, so only the reason shows "
        "it. A warning when any was dropped in the window. The tracepoint is the whole kernel's: the drops may "
        "be another network namespace's (a container's), which the finding says rather than claiming them.",
        "Nothing to run blindly: list the rules with their counters (nft list ruleset, or iptables-save -c and "
        "ip6tables-save -c), find the rule whose counter rises, and change it if the traffic is wanted.",
        fix_on="",
    ),
    NO_COUNTER_FINDING: FindingDoc(
        "Packets were dropped for a reason no counter shows",
        "info",
        "With `doctor --drops`: a drop reason with no counter in the ledger rose (a tc filter's drop action, a "
        "neighbour entry that failed, a TCP segment refused for its sequence numbers, ...). Info: each names "
        "the reason as the kernel gives it and the kernel function that freed the packets, where to look next. "
        "NOT_SPECIFIED (no reason given) is never reported on its own. Machine-wide, like every drop reason.",
        "Nothing to run: the reason and the function say where to look (`tc -s filter show dev IFACE ingress`, "
        "`ip neigh`, ...).",
        fix_on="",
    ),
}


def _where(t: ReasonTotal) -> str:
    return f"{t.count} ({', '.join(t.protocols)}; at {', '.join(t.locations[:3])})"


def list_rules_hint(t: ReasonTotal) -> str:
    """The command that lists the rules of the firewall the freeing function belongs to."""
    if any("nft_" in loc or "nf_tables" in loc for loc in t.locations):
        command = "nft list ruleset"
    elif any(loc.startswith(("ipt_", "ip6t_", "arpt_")) for loc in t.locations):
        command = "iptables-save -c; ip6tables-save -c"
    else:
        command = "nft list ruleset (or iptables-save -c; ip6tables-save -c)"
    return (f"List the rules with their counters: {command}; the rule whose counter rises is the one dropping. "
            f"These drops are {SCOPE}.")


def run(facts: Facts, judged: Judged) -> List[Finding]:
    drops = facts.drops
    if drops is None or not drops.available:
        return []
    out = []
    for t in reason_totals(drops):
        if t.noise or not t.count:
            continue
        evidence = {"reason": t.reason, "count": t.count, "seconds": drops.seconds, "locations": list(t.locations),
                    "protocols": list(t.protocols), "scope": SCOPE}
        if t.finding == "FIREWALL-DROPS":
            out.append(Finding("FIREWALL-DROPS", Severity.WARNING, "machine",
                               f"the firewall dropped {_where(t)} in {drops.seconds:g} s ({SCOPE})",
                               evidence, hint=list_rules_hint(t)))
        elif t.counter is None and t.finding is None:
            out.append(Finding(NO_COUNTER_FINDING, Severity.INFO, "machine",
                               f"{t.reason}: {_where(t)} in {drops.seconds:g} s, a drop no counter shows ({SCOPE})",
                               evidence, hint=FINDINGS[NO_COUNTER_FINDING].fix))
    return out
