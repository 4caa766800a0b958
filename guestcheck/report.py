"""A doctor report: facts, the findings judged from them, and the overall status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from guestcheck.checks import run_checks, skipped_findings
from guestcheck.facts import Facts
from guestcheck.findings import Finding, Status, overall_status

DOCTOR_SCHEMA = "guestcheck.doctor/1"


@dataclass
class Report:
    facts: Facts
    findings: list[Finding]
    status: Status
    skipped: list[Finding] = field(default_factory=list)  # what --skip left out (not in to_dict: human only)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DOCTOR_SCHEMA,
            "status": self.status.label,
            "facts": self.facts.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }


def fill_verdicts(facts: Facts) -> Facts:
    """The judging step's verdicts, written into the facts where the contracts show them: each NIC's `kind`,
    `kind_reason` and `software_type`, decided from the raw answers by today's tables (a saved facts file too)."""
    from guestcheck.checks.nic import classify_nics

    classify_nics(facts)
    return facts


def judge(facts: Facts, only: Iterable[str] = (), skip: Iterable[str] = ()) -> Report:
    fill_verdicts(facts)
    findings, complete = run_checks(facts, only, skip)
    return Report(facts, findings, overall_status(findings, complete=complete), skipped_findings(facts, only, skip))
