"""A doctor report: facts, the findings judged from them, and the overall status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from guestcheck.checks import run_checks, skipped_findings
from guestcheck.checks.memory import MemoryVerdict, memory_verdict
from guestcheck.facts import Facts, plain
from guestcheck.findings import Finding, Status, overall_status
from guestcheck.judge.virt import judge_virt, undecided_phrase

DOCTOR_SCHEMA = "guestcheck.doctor/1"


@dataclass
class Report:
    facts: Facts
    findings: list[Finding]
    status: Status
    # the tuning profile applied on this machine, for the Prometheus info metric; set by the callers that know
    # the machine (refresh, firstboot, doctor --format prometheus); not part of the JSON report
    profile: Optional[str] = None
    skipped: list[Finding] = field(default_factory=list)  # what --skip left out (not in to_dict: human only)
    memory: Optional[MemoryVerdict] = None  # the memory guarantee, judged once here so renderers only show it
    # why the result is incomplete, one phrase each (the status line shows them when the status is unknown)
    incomplete: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DOCTOR_SCHEMA,
            "status": self.status.label,
            "facts": self.facts.to_dict(),
            "findings": [plain(f.to_dict()) for f in self.findings],  # names as in the facts: \xHH for bytes
        }


def fill_verdicts(facts: Facts) -> Facts:
    """The judging step's verdicts, written into the facts where the contracts show them: the platform
    (hypervisor, cloud, container) first, since a NIC's kind depends on being in a VM, then each NIC's `kind`,
    `kind_reason` and `software_type`, all decided from the raw answers by today's tables (a saved facts
    file too)."""
    from guestcheck.checks.nic import classify_nics

    facts.virt = judge_virt(facts.virt)
    classify_nics(facts)
    return facts


def judge(facts: Facts, only: Iterable[str] = (), skip: Iterable[str] = ()) -> Report:
    fill_verdicts(facts)  # today's tables, whatever verdicts a saved facts file carried
    findings, _ = run_checks(facts, only, skip)
    incomplete = incomplete_because(facts, findings)
    return Report(facts, findings, overall_status(findings, complete=not incomplete),
                  skipped=skipped_findings(facts, only, skip), memory=memory_verdict(facts), incomplete=incomplete)


def incomplete_because(facts: Facts, findings: list[Finding]) -> list[str]:
    """What keeps the result from being complete, one phrase each: an area not read, a check that failed, or a
    denied source that could change a verdict the other evidence has not decided (a denied source that could
    not change one, as PID 1's environment in the host's own namespaces, keeps nothing open)."""
    out = []
    if not facts.complete:
        out.append("some facts could not be read (see the notes)")
    failed = sorted({f.subject for f in findings if f.id == "CHECK-FAILED"})
    if failed:
        out.append(f"check failed: {', '.join(failed)}")
    if facts.virt.undecided:
        out.append(undecided_phrase(facts.virt))
    return out
