"""TCP congestion control: Reno, which recovers from a loss one segment per round trip, on a path that needs more."""

from __future__ import annotations

from guestcheck.checks import FindingDoc
from guestcheck.facts import Congestion, Facts
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.text import shell_word

KEY = "net.ipv4.tcp_congestion_control"
GOOD = "cubic"  # the kernel's default since 2.6.19, built into distributions' kernels (else: modprobe tcp_cubic)

FINDINGS = {
    "TCP-CONGESTION-RENO": FindingDoc(
        "TCP uses the Reno congestion control",
        "warning",
        "Reno halves the congestion window at every loss and then grows it by one segment per round trip, so on a "
        "long or fast path one lost packet costs minutes or hours of speed (10 Gbit/s over 100 ms is a window "
        "of 86,000 segments: the 43,000 a loss takes away come back one per 100 ms, over an hour). CUBIC, the "
        "kernel's default, grows the window by the time since the loss, not by round trips, and is built into "
        "every distribution's kernel; BBR, where its module is loaded, paces by the measured bandwidth and holds "
        "its rate on lossy paths. Reno is almost always a leftover line in /etc/sysctl.conf or /etc/sysctl.d/. "
        "The setting is per network namespace and applies to connections opened after it changes.",
        f"sysctl -w {KEY}={GOOD} (in a container's network namespace, where only the controls in "
        "net.ipv4.tcp_allowed_congestion_control may be set, one of those instead). It lasts until the next boot: "
        "remove the line that sets reno from /etc/sysctl.conf or /etc/sysctl.d/ to keep it.",
    ),
    "TCP-CONGESTION-OK": FindingDoc(
        "TCP's congestion control is not Reno",
        "ok",
        "New connections use a congestion control that recovers from loss faster than Reno (CUBIC, BBR, ...). "
        "Said so that `doctor -v` shows the area was checked.",
        "Nothing to fix.",
        fix_on="",
    ),
}

# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [("TCP-CONGESTION-RENO", (f"sysctl:{KEY}",))]


def target(cc: Congestion) -> str:
    """CUBIC, the kernel's default, where this namespace may set it; else a control it may set (a namespace other
    than the host's may only choose from tcp_allowed_congestion_control: CUBIC is refused there when the host's
    default is another); CUBIC where nothing better is known."""
    if not cc.allowed or GOOD in cc.allowed:
        return GOOD
    return next((c for c in cc.allowed if c != "reno"), GOOD)


def _fix(cc: Congestion) -> str:
    """One `sysctl -w`; CUBIC's module loaded first where this kernel does not offer it yet."""
    to = target(cc)
    set_it = f"sysctl -w {KEY}={shell_word(to)}"  # a saved facts file may say anything: one word, quoted
    return f"modprobe tcp_{GOOD}\n{set_it}" if to == GOOD and cc.available and GOOD not in cc.available else set_it


def _hint(cc: Congestion) -> str:
    to = target(cc)
    out = [f"It lasts until the next boot: find the line that sets reno (grep -rs tcp_congestion_control "
           f"/etc/sysctl.conf /etc/sysctl.d/) and remove it, or make it {KEY} = {to}."]
    others = [c for c in cc.allowed if c != "reno"]
    if to != GOOD:
        out.append(f"CUBIC is not in net.ipv4.tcp_allowed_congestion_control ({' '.join(cc.allowed)}), the controls "
                   f"a network namespace other than the host's may choose; in the host's own, {KEY}={GOOD} works too.")
    elif cc.allowed and not others:
        out.append("In a container's network namespace only reno is allowed here: the host's admin adds cubic to "
                   "net.ipv4.tcp_allowed_congestion_control.")
    if to != "bbr" and "bbr" in cc.available and (not cc.allowed or "bbr" in cc.allowed):
        out.append(f"BBR is loaded too (sysctl -w {KEY}=bbr): it holds its rate on lossy long paths where CUBIC "
                   "backs off, and moved a few per cent less than CUBIC on clean ones.")
    return " ".join(out)


def run(facts: Facts, judged: Judged) -> list[Finding]:
    cc = facts.congestion
    if cc is None or cc.control is None:
        return []  # a facts file from before this area, or a kernel that did not say: nothing to judge
    evidence = {"control": cc.control, "available": cc.available, "allowed": cc.allowed}
    if cc.control == "reno":
        return [Finding("TCP-CONGESTION-RENO", Severity.WARNING, "tcp",
                        "TCP congestion control is reno: after a loss it regains speed one segment per round trip",
                        evidence, _fix(cc), hint=_hint(cc))]
    return [Finding("TCP-CONGESTION-OK", Severity.OK, "tcp", f"TCP congestion control is {cc.control}",
                    evidence, "")]
