"""The human selftest report, formatted from the guestcheck.selftest/1 document so both say the same.

The document carries text from outside (the interface name, doctor's findings, a peer's name, a compared file's
fields), so every line is escaped (guestcheck.text) before the verdict's colour, the only control characters
this renderer emits, goes around its label.
"""

from __future__ import annotations

from typing import Any, Optional

from guestcheck.quantities import format_rate
from guestcheck.text import escape_control

_COLOURS = {"near": "\033[32m", "below": "\033[33m", "far-below": "\033[1;31m"}
_RESET = "\033[0m"


def _opt(value: Optional[float], fmt: str, unit: str = "") -> str:
    return "?" if value is None else f"{value:{fmt}}{unit}"


def _streams(n: int) -> str:
    return f"{n} stream{'s' if n != 1 else ''}"


def _run_line(run: dict[str, Any]) -> str:
    retrans = "-" if run.get("retransmits") is None else str(run["retransmits"])
    ratio = "" if run.get("ratio") is None else f"{run['ratio']:.0%}"  # none before a fault: no expected rate yet
    return (f"  {run['direction']:<9} {_streams(run['streams']):<11}"
            f" {format_rate(run['throughput_bps']):>13} {ratio:>5}"
            f"   retransmits {retrans:<6}"
            f" cpu here {_opt(run.get('cpu_local_percent'), '.1f', '%')}"
            f" peer {_opt(run.get('cpu_remote_percent'), '.1f', '%')}"
            f"   rtt {_opt(run.get('rtt_mean_ms'), '.2f', ' ms')}")


def _compare_lines(cmp: dict[str, Any]) -> list[str]:
    lines = [f"compared with {cmp['file']} ({cmp.get('before_started_at') or '?'}):"]
    for row in cmp["runs"]:
        before = format_rate(row["before_bps"]) if row["before_bps"] is not None else "-"
        after = format_rate(row["after_bps"]) if row["after_bps"] is not None else "-"
        change = f"x{row['change']:.2f}" if row["change"] is not None else ""
        lines.append(f"  {row['direction']:<9} {_streams(row['streams']):<11} before {before:>13}"
                     f"   after {after:>13}   {change}")
    lines.append(f"  verdict: {cmp.get('before_verdict') or '?'} -> {cmp.get('after_verdict') or '?'}")
    return lines


def render_finished_runs(runs: list[dict[str, Any]]) -> str:
    """What was measured before a fault (a one-shot `iperf3 -s -1` peer serves the first run, then refuses),
    so the one result there is is not lost behind the error."""
    if not runs:
        return ""
    return "\n".join(["runs finished before the error:", *(escape_control(_run_line(r)) for r in runs)]) + "\n"


def render(doc: dict[str, Any], *, colour: bool = False) -> str:
    expected = doc["expected"]
    where = "--expect" if expected["source"] == "--expect" else f"speed of {expected['interface']}"
    peer = doc["peer"]
    shown = peer["host"] if peer["host"] == peer["address"] else f"{peer['host']} ({peer['address']})"
    lines = [f"guestcheck selftest: {shown} port {peer['port']}, {doc['settings']['duration_s']}s per run,"
             f" expected {format_rate(expected['bps'])} ({where})"]
    lines += [_run_line(r) for r in doc["runs"]]
    rtt = doc.get("connect_rtt")
    if rtt:
        lines.append(f"tcp connect round trip: {rtt['min_ms']:.2f} ms min, {rtt['median_ms']:.2f} ms median "
                     f"of {len(rtt['samples_ms'])}")
    else:
        lines.append("tcp connect round trip: no answer")
    verdict = doc["verdict"]
    label = escape_control(verdict["label"].upper())
    if colour:
        label = f"{_COLOURS[verdict['key']]}{label}{_RESET}"
    best = ", ".join(f"{d} {format_rate(b)}" for d, b in verdict["best_bps"].items())
    lines = [escape_control(line) for line in lines]
    lines.append(f"verdict: {label} " + escape_control(f"({verdict['ratio']:.0%} of {format_rate(expected['bps'])}; "
                                                         f"best {best})"))
    escaped = len(lines)
    lines += [f"  note: {n}" for n in verdict["notes"]]
    if doc["causes"]:
        lines.append("likely causes (from guestcheck doctor):")
        for c in doc["causes"]:
            lines.append(f"  - {c['cause']}: {c['finding']} [{c['subject']}] {c['summary']}")
            if c["fix"]:
                lines.append(f"      fix: {c['fix']}")
    elif verdict["key"] != "near":
        problem = (doc.get("doctor") or {}).get("problem")
        lines.append(f"likely causes: unknown, {problem}" if problem else
                     "likely causes: none found on this machine; look at the peer, the host and the path")
    other = (doc.get("doctor") or {}).get("other_findings") or []
    if other:
        lines.append(f"doctor also reports: {', '.join(other)} (`guestcheck doctor` explains them)")
    if doc.get("compare"):
        lines += _compare_lines(doc["compare"])
    lines[escaped:] = [escape_control(line) for line in lines[escaped:]]
    return "\n".join(lines) + "\n"
