"""A doctor report: facts, the verdicts and findings judged from them, and the overall status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from guestcheck.checks import area_findings, run_checks, skipped_findings
from guestcheck.facts import Facts, plain
from guestcheck.findings import Finding, Status, overall_status
from guestcheck.judge import Judged, judge
from guestcheck.judge.virt import undecided_phrase

DOCTOR_SCHEMA = "guestcheck.doctor/1"


@dataclass
class Report:
    facts: Facts  # as collected (or loaded): the verdicts are in `judged`
    findings: list[Finding]
    status: Status
    # the tuning profile applied on this machine, for the Prometheus info metric; set by the callers that know
    # the machine (refresh, firstboot, doctor --format prometheus); not part of the JSON report
    profile: Optional[str] = None
    skipped: list[Finding] = field(default_factory=list)  # what --skip left out (not in to_dict: human only)
    # why the result is incomplete, one phrase each (the status line shows them when the status is unknown)
    incomplete: list[str] = field(default_factory=list)
    judged: Optional[Judged] = None  # the verdicts on `facts`; judged here when not given

    def __post_init__(self) -> None:
        if self.judged is None:
            self.judged = judge(self.facts)

    def to_dict(self) -> dict[str, Any]:
        from guestcheck.render.json import facts_document

        return {
            "schema": DOCTOR_SCHEMA,
            "status": self.status.label,
            "facts": facts_document(self.facts, self.verdicts),
            "findings": [plain(f.to_dict()) for f in self.findings],  # names as in the facts: \xHH for bytes
        }

    @property
    def verdicts(self) -> Judged:
        assert self.judged is not None  # set in __post_init__
        return self.judged


def build_report(facts: Facts, only: Iterable[str] = (), skip: Iterable[str] = ()) -> Report:
    """Judge the facts, run the checks (`only` and `skip`: finding id globs) and rate the result."""
    judged = judge(facts)
    findings, _ = run_checks(facts, judged, only, skip)
    incomplete = incomplete_because(facts, judged, findings)
    return Report(facts, findings, overall_status(findings, complete=not incomplete),
                  skipped=skipped_findings(facts, judged, only, skip), incomplete=incomplete, judged=judged)


def flags(facts: Facts, areas: Iterable[str]) -> list[Finding]:
    """The findings of the named areas' checks on `facts`, area by area (watch's flags on one frame)."""
    return area_findings(facts, judge(facts), areas)


def incomplete_because(facts: Facts, judged: Judged, findings: list[Finding]) -> list[str]:
    """What keeps the result from being complete, one phrase each: an area not read, a check that failed, or a
    denied source that could change a verdict the other evidence has not decided (a denied source that could
    not change one, as PID 1's environment in the host's own namespaces, keeps nothing open)."""
    out = []
    if not facts.complete:
        out.append("some facts could not be read (see the notes)")
    failed = sorted({f.subject for f in findings if f.id == "CHECK-FAILED"})
    if failed:
        out.append(f"check failed: {', '.join(failed)}")
    if judged.virt.undecided:
        out.append(undecided_phrase(judged.virt))
    return out
