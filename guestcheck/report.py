"""A doctor report: facts, the findings judged from them, and the overall status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from guestcheck.checks import run_checks
from guestcheck.facts import Facts
from guestcheck.findings import Finding, Status, overall_status
from guestcheck.judge.virt import judge_virt

DOCTOR_SCHEMA = "guestcheck.doctor/1"


@dataclass
class Report:
    facts: Facts
    findings: list[Finding]
    status: Status

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DOCTOR_SCHEMA,
            "status": self.status.label,
            "facts": self.facts.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }


def judge(facts: Facts, only: Iterable[str] = (), skip: Iterable[str] = ()) -> Report:
    facts.virt = judge_virt(facts.virt)  # today's tables, whatever verdict a saved facts file carried
    findings, complete = run_checks(facts, only, skip)
    return Report(facts, findings, overall_status(findings, complete=complete))
