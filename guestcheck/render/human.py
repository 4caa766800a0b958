"""The short human report: one line per NIC, then findings worst first, each with its fix.

Every value may come from a facts file or the kernel, so each line is escaped (guestcheck.text) before the
colour codes, the only control characters this renderer emits, go around it.
"""

from __future__ import annotations

from collections import Counter

from guestcheck.facts import Facts, Nic
from guestcheck.findings import Severity, Status
from guestcheck.judge.dropreasons import reason_totals
from guestcheck.judge.ledger import LedgerRow, ledger_rows
from guestcheck.judge.nic import NicVerdict
from guestcheck.nextstep import next_command
from guestcheck.report import Report
from guestcheck.text import escape_control

_COLOURS = {
    Severity.CRITICAL: "\033[1;31m",
    Severity.WARNING: "\033[33m",
    Severity.INFO: "\033[36m",
    Severity.OK: "\033[32m",
}
_STATUS_COLOURS = {"ok": "\033[32m", "warning": "\033[33m", "critical": "\033[1;31m", "unknown": "\033[35m"}
_RESET = "\033[0m"


def _nic_lines(nic: Nic, verdict: NicVerdict) -> list[str]:
    """The NIC's line, and hwdb's vendor and model under it when udev knows them; escaped."""
    speed = f"{nic.speed_mbps}Mb/s" if nic.speed_mbps else "speed ?"
    queues = nic.channels.combined if nic.channels and nic.channels.combined else nic.rx_queues
    parts = [
        f"{nic.name:<12}",
        f"{(nic.driver or '-'):<12}",
        f"{verdict.kind:<11}",
        f"{nic.bus:<7}",
        f"{nic.pci_id or '-':<9}",
        f"{nic.operstate or '?':<7}",
        f"mtu {nic.mtu if nic.mtu is not None else '?':<6}",
        f"{speed:<10}",
        f"queues {queues if queues is not None else '?'}",
    ]
    lines = ["  " + escape_control(" ".join(parts).rstrip())]
    if nic.model or nic.vendor:  # hwdb's names, from udev's database
        lines.append(" " * 15 + escape_control(" ".join(x for x in (nic.vendor, nic.model) if x)))
    return lines


def _memory_line(report: Report) -> str:
    """RAM, the guarantee verdict and CPU steal: what the host may take from this machine."""
    from guestcheck.judge.memory import fmt_bytes, fmt_installed

    f = report.facts
    verdict = report.verdicts.memory  # judged once: the renderer only shows it
    line = f"memory: {fmt_bytes(verdict.total_bytes)}" if f.memory else "memory: ?"
    if verdict.installed_bytes:
        line += f" of {fmt_installed(verdict.installed_bytes)}"
    if f.memory and f.memory.swap_total_bytes:
        line += f" + {fmt_bytes(f.memory.swap_total_bytes)} swap"
    line += f", {verdict.label}"
    steal = f.cpu_steal
    if steal is not None and steal.percent is not None:
        line += f"; cpu steal {steal.percent:.1f}% over {steal.seconds:g} s"
    return line


def _network_lines(f: Facts) -> list[str]:
    """One line each: the way out, receive softirq work over the sample, bridges, VLANs."""
    lines = []
    if f.path is not None:
        routes = [f"{r.family} via {r.gateway or 'link'} dev {r.dev or '?'}"
                  + (f" mtu {r.mtu}" if r.mtu is not None else "")
                  + (f" (table {r.table})" if r.table != "main" else "") for r in f.path.routes]
        lines.append("path: " + ("; ".join(routes) if routes else "no default route"))
    s = f.softirq
    if s is not None and s.cpus:
        rx = sum(c.net_rx_per_s or 0 for c in s.cpus)
        drops = sum(c.dropped_per_s for c in s.cpus)
        squeezes = sum(c.squeezed_per_s for c in s.cpus)
        balance = {True: "irqbalance running", False: "no irqbalance", None: "irqbalance ?"}[s.irqbalance]
        rates = (f"{rx:.0f} NET_RX/s over {len(s.cpus)} CPUs, {drops:g} drops/s, {squeezes:g} squeezes/s"
                 if f.sample_seconds > 0 else f"{len(s.cpus)} CPUs, rates not sampled (--sample 0)")
        lines.append(f"softirq: {rates}; {balance}")
    if f.bridges:
        lines.append("bridges: " + "; ".join(
            f"{b.name} stp {'on' if b.stp_state else 'off'}, forward delay {b.forward_delay_s:g} s"
            f"{', ports ' + ','.join(p.name for p in b.ports) if b.ports else ''}"
            if b.forward_delay_s is not None else f"{b.name}" for b in f.bridges))
    if f.vlans:
        lines.append("vlans: " + "; ".join(
            f"{v.name} id {v.vlan_id if v.vlan_id is not None else '?'} on {v.lower or '?'}" for v in f.vlans))
    return lines


FIX_INDENT = " " * 13


def _ledger_row(row: LedgerRow) -> str:
    where = row.where
    if row.counter == "backlog_bytes":
        return f"  {row.layer:<9} {where} backlog {row.total} bytes"
    moved = f"+{row.rise} ({row.per_s:g}/s), " if row.rise else ""
    explains = f"  -> {row.finding}" if row.finding and row.rise else ""
    return f"  {row.layer:<9} {(where + ' ') if where else ''}{row.counter} {moved}{row.total} since boot{explains}"


def _ledger_lines(f: Facts, verbose: bool) -> list[str]:
    """The loss ledger, NIC to socket: the rows that moved in the window (every row with -v)."""
    if f.ledger is None:
        return []
    rows = ledger_rows(f)
    shown = rows if verbose else [r for r in rows if r.moved]
    whose = f"network namespace {f.ledger.netns or '?'}" + (
        "" if f.ledger.netns_is_initial is None else (" (the host's)" if f.ledger.netns_is_initial else
                                                      " (not the host's)"))
    if not f.ledger.sampled:
        head = f"ledger ({whose}): not sampled (--sample 0), totals since boot only"
        return [head + ("" if verbose else "; -v lists them")] + [_ledger_row(r) for r in shown if verbose]
    if not shown:
        return [f"ledger ({whose}): nothing dropped or queued in the {f.ledger.seconds:g} s window"]
    return [f"ledger ({whose}, {f.ledger.seconds:g} s window" + ("" if verbose else ", rows that moved")
            + "):"] + [_ledger_row(r) for r in shown]


def _drops_lines(f: Facts, verbose: bool) -> list[str]:
    """doctor --drops: the kernel's reason for each drop in the window, machine-wide (NOT_SPECIFIED with -v)."""
    d = f.drops
    if d is None:
        return []
    if not d.available:
        return [f"drop reasons: not sampled: {d.reason_unavailable}"]
    totals = [t for t in reason_totals(d) if verbose or not t.noise]
    head = f"drop reasons (the kernel's, machine-wide: every network namespace; {d.seconds:g} s)"
    lines = [head + (":" if totals else ": none")]
    for t in totals:
        where = " ".join(x for x in (t.layer or "", t.counter or "") if x)
        explains = " -> " + ", ".join(x for x in (where, t.finding or "") if x) if (where or t.finding) else ""
        lines.append(f"  {t.reason} {t.count} ({', '.join(t.protocols)}; {', '.join(t.locations[:2])}){explains}")
    if d.capped:
        lines.append(f"  capped at {d.cap_per_second} events/s: {d.events_not_counted} more not counted")
    if d.events_lost:
        lines.append(f"  the kernel's trace buffer lost {d.events_lost} events")
    return lines


def _fix_lines(fix: str, fix_on: str) -> list[str]:
    """A fix indented under its finding, so the report keeps its shape: a guest fix is shell commands, a host fix
    one labelled line per platform. Leading blanks do not change a command, but they keep a heredoc's end marker
    from ending it: then the label says where the fix is as is (--json's `fix`, unchanged)."""
    parts = [escape_control(p) for p in fix.split("\n")] if fix else []
    if not parts:
        return []
    if fix_on == "host":
        return ["           fix, on the host:"] + [f"{FIX_INDENT}{p}" for p in parts]
    if len(parts) == 1:
        return [f"           fix: {parts[0]}"]
    heredoc = any("<<" in p for p in parts)
    label = ("fix, in the guest (indented here; to paste it, take `fix` from `guestcheck doctor --json`, "
             "where the heredoc's end marker starts its line):" if heredoc else "fix, in the guest:")
    return [f"           {label}", *[f"{FIX_INDENT}{p}" for p in parts]]


def _status_line(report: Report) -> str:
    """The status, and when it is unknown, why, in one phrase: "UNKNOWN (container undecided, denied: ...)"."""
    line = f"guestcheck doctor: {report.status.label.upper()}"
    if report.status is Status.UNKNOWN and report.incomplete:
        line += f" ({'; '.join(report.incomplete)})"
    return line


def render(report: Report, *, colour: bool = False, verbose: bool = False) -> str:
    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    esc = escape_control
    f = report.facts
    judged = report.verdicts
    v = judged.virt
    lines = [
        paint(esc(_status_line(report)), _STATUS_COLOURS[report.status.label]),
        esc(f"machine: {v.hypervisor or 'bare metal'}"
            + (f" ({v.cloud})" if v.cloud else "")
            + (f" ({'; '.join(v.caveats)})" if v.caveats else "")
            + f", container: {v.container or 'none'}, {f.host.vcpus} vCPU(s), kernel {f.host.kernel or '?'}"),
        esc(_memory_line(report)),
        "interfaces:",
    ]
    shown_nics = [n for n in f.nics if verbose or judged.software_type(n) != "loopback"]
    if not shown_nics:
        lines[-1] = "interfaces: none"
    lines += [line for n in shown_nics for line in _nic_lines(n, judged.nic(n))]
    lines += [esc(line) for line in _network_lines(f)]
    lines += [esc(line) for line in _ledger_lines(f, verbose)]
    lines += [esc(line) for line in _drops_lines(f, verbose)]
    shown = [x for x in report.findings if verbose or x.severity >= Severity.WARNING]
    if shown:
        lines.append("findings:")
    for x in shown:
        tag = paint(f"{x.severity.label.upper():<8}", _COLOURS[x.severity])
        lines.append(f"  {tag} " + esc(f"{x.id} [{x.subject}] {x.summary}"))
        lines += _fix_lines(x.fix, x.fix_on)
        if x.hint:  # advice, not a command: after the fix, labelled so nobody pastes it
            lines.append("           hint: " + esc(x.hint))
    if not shown:
        lines.append("no problems found" + ("" if verbose else " (use -v to see every check)"))
    command = next_command(report.findings)
    if report.skipped:
        counts = Counter(x.severity for x in report.skipped)
        by_severity = ", ".join(f"{counts[s]} {s.label}" for s in sorted(counts, reverse=True))
        lines.append(f"--skip left out {len(report.skipped)} finding(s): {by_severity}")
    denied = [p.source for p in f.problems if p.kind == "denied"]
    if denied:
        said = (f"note: could not read {', '.join(denied)}, even as root" if f.host.is_root else
                f"note: not run as root, could not read {', '.join(denied)} (run as root for a full report)")
        lines.append(paint(esc(said), _STATUS_COLOURS["unknown"]))
    for problem in f.problems:
        if problem.kind != "denied":
            lines.append(paint(esc(f"note: {problem}"), _STATUS_COLOURS["unknown"]))
    if command:
        lines.append(esc(f"next: {command}"))  # last, where the eye lands when the report ends
    return "\n".join(lines) + "\n"
