"""The human selftest report, formatted from the guestcheck.selftest/1 document so both say the same.

The document carries text from outside (the interface name, doctor's findings, a peer's name, a compared file's
fields), so every line is escaped (guestcheck.text) before the verdict's colour, the only control characters
this renderer emits, goes around its label.
"""

from __future__ import annotations

from typing import Any, Optional

from guestcheck.netaddr import bracketed
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


def _pct(stats: dict[str, Any]) -> str:
    parts = " ".join(f"p{q} {_opt(stats.get(f'p{q}_ms'), '.2f')}" for q in (50, 90, 99))
    lost = f", {stats['lost']} lost" if stats.get("lost") else ""
    return f"{parts} ms ({stats['count']} probes{lost})"


def _latency_lines(lat: dict[str, Any]) -> list[str]:
    """The latency phase: the probe, idle and loaded percentiles per direction, the added latency, the verdict
    and its causes. Escaped by the caller with the rest."""
    probe = lat.get("probe")
    if probe is None:
        lines = ["latency: not measured, no port answered the probes:"]
        lines += [f"  {t}" for t in lat.get("tried") or []]
        lines.append("  (give --probe-port PORT, a closed TCP port of the peer, or --echo-port; --no-latency: skip)")
        return lines
    lines = [f"latency ({probe['method']} {bracketed(probe['address'])}:{probe['port']}, "
             f"{lat['rate_per_s']:g} probes/s):",
             f"  idle      {_pct(lat['idle'])}"]
    for direction, stats in lat["loaded"].items():
        add = lat["added"].get(direction) or {}
        lines.append(f"  {direction:<9} {_pct(stats)}   added p50 {_opt(add.get('p50_ms'), '+.2f')}"
                     f" p90 {_opt(add.get('p90_ms'), '+.2f')} ms")
    verdict = lat["verdict"]
    worst = verdict.get("added_p90_ms")
    where = f"{verdict['direction']} adds {worst:.1f} ms at p90; " if worst is not None else ""
    lines.append(f"latency verdict: {verdict['label'].upper()} ({where}target {lat['target_ms']:g} ms)")
    if lat.get("causes"):
        lines.append("latency causes:")
        for c in lat["causes"]:
            lines.append(f"  - {c['cause']}: {c['evidence']}")
            if c["fix"]:
                lines.append(f"      fix: {c['fix']}")
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
    if doc.get("latency"):
        lines += _latency_lines(doc["latency"])
    if doc.get("compare"):
        lines += _compare_lines(doc["compare"])
    lines[escaped:] = [escape_control(line) for line in lines[escaped:]]
    return "\n".join(lines) + "\n"
