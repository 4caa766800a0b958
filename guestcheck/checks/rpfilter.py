"""The reverse-path filter: packets dropped because the route back to their source leaves by another interface."""

from __future__ import annotations

from typing import Dict, List

from guestcheck.checks import FindingDoc
from guestcheck.checks.fixes import sysctl_lines
from guestcheck.facts import Facts
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.names import file_safe_ifname

LOOSE = 2

FINDINGS = {
    "IP-RPFILTER-DROPS": FindingDoc(
        "The reverse-path filter dropped packets",
        "warning",
        "With net.ipv4.conf.*.rp_filter = 1 (strict, RFC 3704) the kernel drops an incoming IPv4 packet when "
        "the route back to its source leaves by another interface: an asymmetric route, as on a machine with "
        "two NICs in one subnet, policy routing, or a VPN. TcpExtIPReversePathFilter counts them, for every "
        "protocol (the name is historical). The value that applies is the larger of conf.all and the "
        "interface's. A warning when it rose during the sample.",
        "Loose mode (2) accepts a source that is reachable by any interface: sysctl -w "
        "net.ipv4.conf.all.rp_filter=2 and each strict interface's, kept in /etc/sysctl.d/; or make the route "
        "symmetric (a route or a policy rule back out through the interface the packets arrive on).",
    ),
}


def strict(settings: Dict[str, str]) -> List[str]:
    """The rp_filter keys set to strict (1): conf.all, conf.default and interfaces."""
    return sorted(k for k, v in settings.items() if k.endswith(".rp_filter") and v == "1")


def rpfilter_fix(settings: Dict[str, str]) -> str:
    keys = {"net.ipv4.conf.all.rp_filter": LOOSE}
    for key in strict(settings):
        name = key[len("net.ipv4.conf."):-len(".rp_filter")]
        if name in ("all", "default") or file_safe_ifname(name.replace("/", ".")):
            keys[key] = LOOSE
    return "\n".join(sysctl_lines(keys, "rpfilter"))


def run(facts: Facts, judged: Judged) -> list[Finding]:
    ledger = facts.ledger
    if ledger is None:
        return []
    rate = ledger.counters.get("TcpExtIPReversePathFilter")
    if rate is None or not rate.rise:
        return []
    settings = {k: v for k, v in ledger.settings.items() if k.endswith(".rp_filter")}
    return [Finding(
        "IP-RPFILTER-DROPS", Severity.WARNING, "ip",
        f"reverse-path filter dropped +{rate.rise} packets ({rate.per_s:g}/s) during the sample"
        + (f"; strict on {', '.join(k.split('.')[3] for k in strict(settings))}" if strict(settings) else ""),
        {"rise": rate.rise, "per_s": rate.per_s, "since_boot": rate.total, "rp_filter": settings},
        rpfilter_fix(settings),
        hint="Loose mode still drops sources no interface routes to; where the asymmetry is deliberate (two NICs, "
             "policy routing), a rule that sends replies out of the interface they came in by keeps strict mode.")]


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [("IP-RPFILTER-DROPS", ("sysctl:net.ipv4.conf.all.rp_filter",))]
