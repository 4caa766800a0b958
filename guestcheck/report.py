"""A doctor report: facts, the verdicts and findings judged from them, and the overall status.

Only the record: guestcheck/doctor.py builds it (judge, checks, status), so a renderer that takes a Report
reaches neither the checks nor the collectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from guestcheck.facts import Facts, plain
from guestcheck.findings import Finding, Status
from guestcheck.judge import Judged, judge, with_verdicts
from guestcheck.judge.dropreasons import drops_section
from guestcheck.judge.ledger import ledger_section

DOCTOR_SCHEMA = "guestcheck.doctor/1"


@dataclass
class Report:
    """The result of one doctor run, which the renderers take: facts, findings, status."""

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
        return {
            "schema": DOCTOR_SCHEMA,
            "status": self.status.label,
            "facts": with_verdicts(self.facts, self.verdicts).to_dict(),  # as facts/1 (render.json.facts_document)
            "findings": [plain(f.to_dict()) for f in self.findings],  # names as in the facts: \xHH for bytes
            "ledger": plain(ledger_section(self.facts)),  # every counter of the window, NIC to socket
            "drops": plain(drops_section(self.facts)),  # the kernel's drop reasons (only with doctor --drops)
        }

    @property
    def verdicts(self) -> Judged:
        assert self.judged is not None  # set in __post_init__
        return self.judged
