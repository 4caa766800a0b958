"""The verdict (pure): measured throughput against the expected rate, and the likely causes from doctor.

Thresholds, on the best run of each direction (the most streams do not always win), the worse direction
deciding:
- near line rate: >= 80%. TCP over Ethernet carries at most ~94% of the line rate as payload (headers),
  and a healthy virtual NIC loses a few percent more; 80% leaves room for that and for noise.
- below line rate: >= 40%. Something costs throughput, often a tunable (buffers, queues, offloads).
- far below line rate: < 40%. A structural limit: an emulated NIC, no offloads, one vCPU doing all the
  packet work, or a NAT or userspace network in the path.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional

from guestcheck.findings import Finding, Severity
from guestcheck.quantities import format_rate
from guestcheck.selftest import errors
from guestcheck.selftest.iperf3 import RunResult

NEAR_AT = 0.80
BELOW_AT = 0.40
LABELS = {"near": "near line rate", "below": "below line rate", "far-below": "far below line rate"}
EXIT = {"near": errors.NEAR, "below": errors.BELOW, "far-below": errors.FAR_BELOW}


@dataclass
class Verdict:
    key: str  # near | below | far-below
    ratio: float  # the deciding direction's best throughput / expected
    expected_bps: float
    best_bps: dict[str, float]  # direction -> best throughput
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS[self.key]

    @property
    def exit_code(self) -> int:
        return EXIT[self.key]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "ratio": round(self.ratio, 4),
                "expected_bps": self.expected_bps, "best_bps": self.best_bps,
                "thresholds": {"near": NEAR_AT, "below": BELOW_AT}, "notes": self.notes}


def classify_ratio(ratio: float) -> str:
    if ratio >= NEAR_AT:
        return "near"
    if ratio >= BELOW_AT:
        return "below"
    return "far-below"


def judge_runs(runs: list[RunResult], expected_bps: float) -> Verdict:
    if not runs:
        raise ValueError("no runs to judge")
    best: dict[str, float] = {}
    for run in runs:
        best[run.direction] = max(best.get(run.direction, 0.0), run.throughput_bps)
    ratio = min(best.values()) / expected_bps
    verdict = Verdict(classify_ratio(ratio), ratio, expected_bps, best)
    for direction in best:
        single = [r for r in runs if r.direction == direction and r.streams == 1]
        multi = [r for r in runs if r.direction == direction and r.streams > 1]
        if single and multi:
            one, many = single[0].throughput_bps / expected_bps, max(r.throughput_bps for r in multi) / expected_bps
            if one < NEAR_AT <= many:
                verdict.notes.append(
                    f"{direction}: one stream reaches {one:.0%} but {multi[0].streams} streams reach {many:.0%}: "
                    "a per-flow limit (TCP buffers or window, one vCPU per flow), not the link")
    slow, fast = min(best, key=lambda d: best[d]), max(best, key=lambda d: best[d])
    if verdict.key != "near" and best[slow] < 0.9 * best[fast]:  # a real gap, not noise
        verdict.notes.append(f"{slow} is the slower direction ({format_rate(best[slow])})")
    return verdict


# doctor finding ids (globs) -> the cause a slow result points to; the first match wins.
CAUSES: list[tuple[str, str]] = [
    ("NIC-EMULATED", "emulated NIC"),
    ("OFFLOAD-*", "offloads off"),
    ("QUEUES-*", "single queue (one vCPU takes all the NIC's work)"),
    ("FLOW-SNDBUF-LIMITED", "small TCP buffers (a connection held back by its send buffer)"),
    ("FLOW-RWND-LIMITED", "small TCP buffers (a connection held back by the receiver's window)"),
    ("CONNTRACK-TABLE-FULL", "kernel network limits (the conntrack table is full)"),
    ("CONNTRACK-DROPS", "kernel network limits (conntrack drops packets)"),
    ("QDISC-SHAPED", "a shaper on the path caps the rate"),
    ("QDISC-DROPS", "a full queue on the way out drops packets"),
    ("TCP-RETRANSMITS", "TCP loses and retransmits segments"),
    ("TCP-MEMORY-PRESSURE", "kernel network limits (TCP is short of buffer memory)"),
    ("PATH-NAT*", "NAT in the path"),
    ("PATH-MTU*", "MTU mismatch on the path"),
    ("SOFTIRQ-*", "softirq saturation (packet work piles up on one vCPU)"),
    ("IRQ*", "NIC interrupts all on one vCPU"),
    ("CPU-STEAL*", "vCPU steal (the host's CPUs are oversubscribed)"),
]


@dataclass
class Cause:
    cause: str
    finding: str
    severity: str
    subject: str
    summary: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cause_for(finding_id: str) -> Optional[str]:
    return next((cause for pattern, cause in CAUSES if fnmatch.fnmatchcase(finding_id, pattern)), None)


# Findings that explain a slow result whatever their severity: a shaper is info while idle in doctor's window, and
# caps every transfer all the same
ALWAYS_CAUSES = ("QDISC-SHAPED",)


def relevant(findings: Iterable[Finding], interface: Optional[str], nic_names: Iterable[str]) -> list[Finding]:
    """Warning and critical findings (and ALWAYS_CAUSES), except those about a NIC that does not carry this path."""
    others = set(nic_names) - ({interface} if interface else set())
    return [f for f in findings if (f.severity >= Severity.WARNING or f.id in ALWAYS_CAUSES)
            and not (interface and f.subject in others)]


def likely_causes(findings: Iterable[Finding], interface: Optional[str],
                  nic_names: Iterable[str]) -> tuple[list[Cause], list[str]]:
    """The findings that explain a slow result, as causes; and the ids of the other relevant findings."""
    causes, other = [], []
    for f in relevant(findings, interface, nic_names):
        cause = cause_for(f.id)
        if cause is None:
            other.append(f.id)
        else:
            causes.append(Cause(cause, f.id, f.severity.label, f.subject, f.summary, f.fix))
    return causes, sorted(set(other))
