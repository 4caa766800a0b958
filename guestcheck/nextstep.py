"""The one command a report ends with: what to run next, from the findings that need attention.

A finding whose guest fix is (or has) a `guestcheck tune ...` command gives that command; an offload or RX
ring finding with a guest fix gives the tuner's command for it (`tune offloads IFACE`, `tune rings IFACE`: the
same change, journaled, persisted and undone by `tune rollback`); otherwise the worst finding's
`guestcheck explain ID`. Pure: the human renderer prints the result.
"""

from __future__ import annotations

import fnmatch
from typing import Iterable, Optional

from guestcheck.findings import Finding, Severity
from guestcheck.text import shell_word

TUNE_PREFIX = "guestcheck tune "
# finding ids -> the tune subcommand that makes the same change on the finding's interface
TUNER_FOR = (("OFFLOAD-*-OFF", "offloads"), ("RING-RX-DROPS", "rings"), ("RING-RX-SMALL", "rings"))


def tune_command(finding: Finding) -> Optional[str]:
    """The `guestcheck tune ...` command that fixes this finding in the guest, or None."""
    if finding.fix_on != "guest" or not finding.fix.strip():
        return None
    for line in finding.fix.splitlines():
        if line.strip().startswith(TUNE_PREFIX):
            return line.strip()
    for pattern, command in TUNER_FOR:
        if fnmatch.fnmatchcase(finding.id, pattern):
            return f"{TUNE_PREFIX}{command} {shell_word(finding.subject)}"
    return None


def next_command(findings: Iterable[Finding]) -> Optional[str]:
    """What to run next, or None when nothing is at warning or worse. `findings` come worst first."""
    needing = [f for f in findings if f.severity >= Severity.WARNING]
    if not needing:
        return None
    for f in needing:
        command = tune_command(f)
        if command:
            return command
    return f"guestcheck explain {shell_word(needing[0].id)}"
