"""`guestcheck flows` output: a short table of the busiest flows with each verdict and its fix, or flows/1 JSON.
Formats only: the verdicts are judge/flows.py's."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence

from guestcheck.facts import Flows
from guestcheck.judge.flows import FlowsVerdict, FlowVerdict
from guestcheck.quantities import format_rate
from guestcheck.text import escape_control

FLOWS_SCHEMA = "guestcheck.flows/1"


def endpoint(address: str, port: int) -> str:
    address = address[7:] if address.startswith("::ffff:") and "." in address else address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _ms(us: Any) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def _pct(share: Any) -> str:
    return "-" if share is None else f"{share:.0%}"


def _buffer(used: Any, limit: Any) -> str:
    return "-" if used is None or not limit else f"{used >> 10}/{limit >> 10}K"


def flow_dict(v: FlowVerdict) -> Dict[str, Any]:
    f = v.flow
    out: Dict[str, Any] = dict(f.__dict__)
    out.update({"role": v.role, "limited_by": v.limited_by, "rule": v.rule, "why": v.why,
                "rate_bps": _round(v.rate_bps), "sent_bps": _round(v.sent_bps),
                "received_bps": _round(v.received_bps), "busy_share": _round(v.busy_share, 4),
                "rwnd_limited_share": _round(v.rwnd_share, 4), "sndbuf_limited_share": _round(v.sndbuf_share, 4),
                "retrans_share": _round(v.retrans_share, 4), "fix": v.fix, "fix_on": v.fix_on,
                "arithmetic": v.arithmetic})
    return out


def _round(value: Any, digits: int = 0) -> Any:
    if value is None:
        return None
    return round(value, digits) if digits else round(value)


def flows_json(flows: Flows, verdict: FlowsVerdict, shown: Sequence[FlowVerdict]) -> str:
    doc = {"schema": FLOWS_SCHEMA, "sampled": flows.sampled, "seconds": flows.seconds,
           "connections": flows.connections, "moved_data": len(verdict.verdicts), "capped": flows.capped,
           "path": None if verdict.path is None else {"bps": verdict.path.bps, "source": verdict.path.source},
           "counts": verdict.counts(), "flows": [flow_dict(v) for v in shown],
           "notes": list(verdict.notes) + list(flows.notes)}
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def flows_human(flows: Flows, verdict: FlowsVerdict, shown: Sequence[FlowVerdict], total_shown: int) -> str:
    window = f"in {flows.seconds:g} s" if flows.sampled else "since they began (not sampled)"
    path = (f"path {format_rate(verdict.path.bps)} ({verdict.path.source})" if verdict.path is not None
            else "path rate unknown")
    lines: List[str] = [f"{flows.connections} TCP connections, {len(verdict.verdicts)} moved data {window}; {path}"]
    if not shown:
        lines.append("no flow moved data" + (" matching the filter" if total_shown != len(verdict.verdicts) else ""))
    else:
        lines.append(f"{'PEER':<27} {'LOCAL':<7} {'ROLE':<8} {'RATE':>12} {'RTT/MIN ms':>12} {'CWND':>5} "
                     f"{'RETX':>5} {'BUSY':>5} {'RWND':>5} {'SNDBUF':>6} {'SNDQ':>11} {'RCVQ':>11}  LIMITED BY")
        for v in shown:
            f = v.flow
            rate = format_rate(v.rate_bps) if v.rate_bps is not None else "-"
            rtt = f"{_ms(f.rtt_us if v.role == 'sender' else f.rcv_rtt_us)}/{_ms(f.min_rtt_us)}"
            lines.append(f"{endpoint(f.remote, f.remote_port):<27} {':' + str(f.local_port):<7} {v.role:<8} "
                         f"{rate:>12} {rtt:>12} {f.snd_cwnd if f.snd_cwnd is not None else '-':>5} "
                         f"{_pct(v.retrans_share):>5} {_pct(v.busy_share):>5} {_pct(v.rwnd_share):>5} "
                         f"{_pct(v.sndbuf_share):>6} {_buffer(f.wmem_queued_peak, f.sndbuf):>11} "
                         f"{_buffer(f.rmem_alloc, f.rcvbuf):>11}  {v.limited_by}")
            if v.limited_by != "none":
                lines.append(f"    why: {v.why} [{v.rule}]")
            if v.fix:
                where = "run here" if v.fix_on == "here" else f"run on {v.fix_on}"
                lines.append(f"    fix ({where}): {v.fix}")
                lines.append(f"    {v.arithmetic}")
        if total_shown > len(shown):
            lines.append(f"({total_shown - len(shown)} more: --top, --json)")
    counts = verdict.counts()
    lines.append("limited by: " + ", ".join(f"{k} {n}" for k, n in counts.items() if n) if any(
        counts.values()) else "limited by: nothing (no flow moved data)")
    lines.extend(f"note: {n}" for n in [*verdict.notes, *flows.notes])
    return "".join(escape_control(line) + "\n" for line in lines)
