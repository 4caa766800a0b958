"""A finding is one judged problem (or all-clear) with its evidence and the exact fix."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """Ordered so that max() gives the worst; values are not the exit codes."""

    OK = 0
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Status(enum.Enum):
    """The overall verdict; the value is the Nagios plugin exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One thing doctor found: a stable id, its severity, the subject, the evidence and the fix."""

    id: str
    severity: Severity
    subject: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""
    # where the fix runs: "guest" (shell commands, one per line, pasteable as they are), "host" (one labelled
    # line per platform, for the hypervisor's admin), "" when there is nothing to fix
    fix_on: str = ""
    # advice for a person where no command can be given (a gateway only the admin knows, memory the provider
    # must reserve), or beside the fix (how to keep it across reboots in the machine's own network
    # configuration); prose, never pasted: `fix` holds only what runs as it is
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = self.severity.label
        return d


def overall_status(findings: list[Finding], *, complete: bool = True) -> Status:
    """Critical beats warning beats unknown beats ok, as Nagios plugins rank them."""
    worst = max((f.severity for f in findings), default=Severity.OK)
    if worst is Severity.CRITICAL:
        return Status.CRITICAL
    if worst is Severity.WARNING:
        return Status.WARNING
    return Status.OK if complete else Status.UNKNOWN
