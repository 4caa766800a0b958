"""Connection tracking: a table near its limit, and packets it dropped because it was full."""

from __future__ import annotations

from typing import Optional

from guestcheck.checks import FindingDoc
from guestcheck.checks.fixes import write_file
from guestcheck.facts import Conntrack, Facts
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged

FULL_SHARE = 0.8
SYSCTL_FILE = "/etc/sysctl.d/90-guestcheck-conntrack.conf"
MODULES_FILE = "/etc/modules-load.d/guestcheck-conntrack.conf"

FINDINGS = {
    "CONNTRACK-TABLE-FULL": FindingDoc(
        "The connection tracking table is nearly full",
        "warning",
        "Every connection through a stateful firewall, NAT or Docker/Kubernetes networking needs an entry in "
        "the conntrack table. At nf_conntrack_max the kernel drops the first packet of every new connection "
        "(dmesg: \"nf_conntrack: table full, dropping packet\"): new connections stall for a SYN retransmit "
        "(1 s, then 3 s...) or fail, while established ones carry on. Warned at 80 % so there is time to act. "
        "Each entry costs about 300 bytes of kernel memory, so doubling the limit is cheap. In a container the "
        "count is the container's but the limit is the host's, and only the host can raise it.",
        "sysctl -w net.netfilter.nf_conntrack_max=N (N: twice the present limit, rounded up to a power of two) "
        f"and keep it in {SYSCTL_FILE}. The file is only applied if nf_conntrack is loaded when systemd-sysctl "
        f"runs, so the fix also lists it in {MODULES_FILE}. Optionally raise the hash size with it: "
        "echo N/4 > /sys/module/nf_conntrack/parameters/hashsize.",
    ),
    "CONNTRACK-DROPS": FindingDoc(
        "Connection tracking dropped packets",
        "critical",
        "/proc/net/stat/nf_conntrack counts, per CPU: drop (a new connection refused: the table was full and "
        "nothing could be evicted), early_drop (an unconfirmed, non-assured entry evicted to make room: the "
        "table was full) and insert_failed (a new entry lost a race with another CPU, or the table was full). "
        "Critical when they rise during the sample: it is happening now. Risen since boot only: a warning for "
        "drop or early_drop (the table was full at some point, and the load that filled it, a daily peak or a "
        "scan, tends to come back), info for insert_failed alone (a race between packets of one new flow on "
        "two CPUs, classically parallel UDP DNS queries from one socket, rather than a full table). The "
        "counters are 32-bit and per network namespace.",
        "For drop and early_drop: raise the limit (see CONNTRACK-TABLE-FULL: sysctl -w "
        "net.netfilter.nf_conntrack_max=N, and a file in /etc/sysctl.d/), or track fewer connections "
        "(NOTRACK/notrack rules for traffic that needs no state, shorter timeouts such as "
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait). For insert_failed alone: resolv.conf "
        "`options single-request-reopen` stops glibc's parallel A/AAAA queries from racing.",
    ),
    "CONNTRACK-NOT-LOADED": FindingDoc(
        "Connection tracking is not loaded",
        "ok",
        "Without the nf_conntrack module there is no table to fill and no conntrack drops: no stateful "
        "firewall or NAT runs on this machine (or in this network namespace's kernel). Said so that its "
        "absence from the report is not mistaken for a check that did not run.",
        "Nothing to fix.",
        fix_on="",
    ),
    "CONNTRACK-OK": FindingDoc(
        "The conntrack table has room and drops nothing",
        "ok",
        "Connection tracking is loaded, its table is below 80 % full and no drop, early_drop or insert_failed "
        "counter is above 0. Said so that `doctor -v` shows the area was checked.",
        "Nothing to fix.",
        fix_on="",
    ),
}


def new_max(ct: Conntrack) -> int:
    """Twice the present limit (or twice the count, if larger), rounded up to a power of two."""
    want = max(2 * (ct.max or 0), 2 * (ct.count or 0), 1024 if not ct.max else 2)
    return 1 << (want - 1).bit_length()


def sysctl_fix(ct: Conntrack) -> str:
    """Raise the limit now, keep it in sysctl.d, and load nf_conntrack early enough for systemd-sysctl to
    apply it at boot: commands one per line, each file written by a heredoc."""
    n = new_max(ct)
    return "\n".join([f"sysctl -w net.netfilter.nf_conntrack_max={n}",
                      write_file(SYSCTL_FILE, [f"net.netfilter.nf_conntrack_max = {n}"]),
                      write_file(MODULES_FILE, ["nf_conntrack"])])


def _drops(ct: Conntrack) -> Optional[Finding]:
    evidence = {"in_sample": ct.in_sample, "since_boot": ct.since_boot, "count": ct.count, "max": ct.max}
    rising = {k: v for k, v in ct.in_sample.items() if v}
    if rising:
        if ct.per_cpu_in_sample:
            evidence["per_cpu_in_sample"] = ct.per_cpu_in_sample
        what = ", ".join(f"{k} +{v}" for k, v in rising.items())
        if set(rising) == {"insert_failed"}:
            evidence["if_the_table_has_room"] = ("the races are clashes between packets of one new flow: "
                                                 "resolv.conf `options single-request-reopen` for DNS")
        return Finding("CONNTRACK-DROPS", Severity.CRITICAL, "conntrack",
                       f"conntrack dropping now: {what} during the sample", evidence, sysctl_fix(ct))
    old = {k: v for k, v in ct.since_boot.items() if v}
    if not old:
        return None
    what = ", ".join(f"{k} {v}" for k, v in old.items())
    if set(old) == {"insert_failed"}:
        evidence["next"] = ("resolv.conf `options single-request-reopen` if the races come from DNS; sample "
                            "under load (guestcheck doctor --sample 10) to see whether it still happens")
        return Finding("CONNTRACK-DROPS", Severity.INFO, "conntrack",
                       f"conntrack insert races since boot ({what}), none during the sample", evidence, "")
    evidence["next"] = "sample under load (guestcheck doctor --sample 10) to see it happen"
    return Finding("CONNTRACK-DROPS", Severity.WARNING, "conntrack",
                   f"conntrack table was full since boot ({what}), not during the sample", evidence, sysctl_fix(ct))


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [("CONNTRACK-TABLE-FULL", ("sysctl:net.netfilter.nf_conntrack_max",))]


def run(facts: Facts, judged: Judged) -> list[Finding]:
    ct = facts.conntrack
    if ct is None:
        return []
    if not ct.loaded:
        return [Finding("CONNTRACK-NOT-LOADED", Severity.OK, "conntrack",
                        "connection tracking is not loaded (no net.netfilter.nf_conntrack_max): no table to fill",
                        {"loaded": False}, "")]
    out = []
    if ct.count is not None and ct.max:
        share = ct.count / ct.max
        if share >= FULL_SHARE:
            out.append(Finding(
                "CONNTRACK-TABLE-FULL", Severity.WARNING, "conntrack",
                f"conntrack table {share:.0%} full: {ct.count} of {ct.max} entries",
                {"count": ct.count, "max": ct.max, "buckets": ct.buckets, "share": round(share, 3)},
                sysctl_fix(ct)))
    drops = _drops(ct)
    if drops:
        out.append(drops)
    if not out:
        table = (f"{100 * ct.count // ct.max}% full ({ct.count} of {ct.max} entries)" if ct.count is not None and ct.max
                 else "size unknown")
        out.append(Finding("CONNTRACK-OK", Severity.OK, "conntrack", f"conntrack table {table}, no drops",
                           {"count": ct.count, "max": ct.max}, ""))
    return out
