"""The doctor pipeline on facts already collected: judge them, run the checks, rate the result (a Report).

doctor, first boot, refresh, selftest's likely causes and watch's flags all go through here, so each judges the
same way; the renderers only take the Report it builds (guestcheck/report.py).
"""

from __future__ import annotations

from typing import Iterable

from guestcheck.checks import area_findings, run_checks, skipped_findings
from guestcheck.facts import Facts
from guestcheck.findings import Finding, overall_status
from guestcheck.judge import Judged, judge
from guestcheck.judge.virt import undecided_phrase
from guestcheck.report import Report


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
