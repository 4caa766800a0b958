"""Checks: pure functions of the facts and their verdicts that return Findings, one module per area.

Every module has the same face: `FINDINGS` (id -> FindingDoc, what `guestcheck explain` prints),
`run(facts, judged) -> list[Finding]` (judged: guestcheck.judge's verdicts on those facts) and, where its
findings are about settings another agent may own, `FINDING_SETTINGS` ((id pattern, settings) pairs, the
first match wins). The modules are found in this package, so a new area is one new module and no list here.
The runner calls each one isolated, so one failing check becomes an "unknown" result for its area instead of
stopping the others.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import Dict, Iterable, List, Optional, Tuple

from guestcheck.facts import Facts
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged


@dataclass(frozen=True)
class FindingDoc:
    """The catalog entry of one finding id: title, usual severity, why and the fix."""

    title: str
    severity: str  # the usual severity
    why: str
    fix: str
    judged_on: str = ""  # for NIC-level findings: PRESENT or CARRYING_TRAFFIC, printed by `explain`
    # where its findings' fixes run (see Finding.fix_on): "guest", "host", or "" when they never carry a command
    # (an all-clear, context, or advice only a person can follow, which goes in Finding.hint)
    fix_on: str = "guest"
    guest_fix_too: bool = False  # a "host" finding that on some platforms gives a command for the guest instead


# Which interfaces a NIC-level check looks at. A setting of the VM (the NIC model, the queues the host gave,
# what the host's backend negotiated) is wrong whatever the link state, so a NIC that is still coming up
# must not hide it; a setting that only costs while packets flow is judged where packets can flow.
PRESENT = ("every interface present, whatever its link state (down, or still coming up): "
           "the VM's configuration is wrong either way")
CARRYING_TRAFFIC = ("interfaces that carry traffic (operstate up, or unknown with the link up and a carrier): "
                    "it only costs while packets flow")


_MODULES: List[ModuleType] = []


def modules() -> list[ModuleType]:
    """Every check module of this package (one with FINDINGS and run), by name: found, never listed."""
    if not _MODULES:
        found = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]
        _MODULES.extend(m for m in found if hasattr(m, "FINDINGS") and hasattr(m, "run"))
    return list(_MODULES)


def catalog() -> dict[str, FindingDoc]:
    out: dict[str, FindingDoc] = {}
    for module in modules():
        out.update(module.FINDINGS)
    out.update(RUNNER_FINDINGS)
    return out


RUNNER_FINDINGS = {
    "CHECK-FAILED": FindingDoc(
        "A check could not run",
        "info",
        "A check raised an error on these facts. Its area is unknown; the other checks still ran.",
        "Report the error with `guestcheck facts --json` attached.",
        fix_on="",
    ),
}


def guest_fix_ids() -> set[str]:
    """The ids whose findings can carry a fix to paste in the guest: each one has a live test that pastes it
    (tests/live/test_fixes_live.py) or a reason there why it cannot be built there."""
    return {i for i, doc in catalog().items() if doc.fix_on == "guest" or doc.guest_fix_too}


def _selected(finding_id: str, only: Iterable[str], skip: Iterable[str]) -> bool:
    only, skip = list(only), list(skip)
    if only and not any(fnmatch.fnmatchcase(finding_id, p.upper()) for p in only):
        return False
    return not any(fnmatch.fnmatchcase(finding_id, p.upper()) for p in skip)


def unknown_ids(patterns: Iterable[str]) -> list[str]:
    """Patterns that match no known finding id: a typo the user should hear about."""
    ids = list(catalog())
    return [p for p in patterns if not any(fnmatch.fnmatchcase(i, p.upper()) for i in ids)]


def run_checks(facts: Facts, judged: Judged, only: Iterable[str] = (),
               skip: Iterable[str] = ()) -> tuple[list[Finding], bool]:
    """All findings, worst first, and whether every check ran."""
    findings: list[Finding] = []
    complete = facts.complete
    for module in modules():
        if not any(_selected(i, only, skip) for i in module.FINDINGS):
            continue
        try:
            found = module.run(facts, judged)
        except Exception as e:  # a bug in one check must not hide the others' results
            complete = False
            found = [Finding("CHECK-FAILED", Severity.INFO, module.__name__.rsplit(".", 1)[1],
                             f"check failed: {type(e).__name__}: {e}", {},
                             hint=RUNNER_FINDINGS["CHECK-FAILED"].fix)]
        findings.extend(_where_fixed(f) for f in found if f.id == "CHECK-FAILED" or _selected(f.id, only, skip))
    findings = [annotate(facts, judged, f) for f in findings]  # the other agents that own what a finding is about
    findings.sort(key=lambda f: (-f.severity, f.id, f.subject))
    return findings, complete


def skipped_findings(facts: Facts, judged: Judged, only: Iterable[str], skip: Iterable[str]) -> list[Finding]:
    """The findings `skip` left out (of those `only` lets in), so the report can say what it hid. Runs only
    the checks that own a skipped id; one that fails is not reported here (run_checks reports failures)."""
    only, skip = list(only), list(skip)
    if not skip:
        return []
    out: list[Finding] = []
    for module in modules():
        hidden = [i for i in module.FINDINGS if _selected(i, only, ()) and not _selected(i, (), skip)]
        if not hidden:
            continue
        try:
            found = module.run(facts, judged)
        except Exception:
            continue
        out.extend(f for f in found if _selected(f.id, only, ()) and not _selected(f.id, (), skip))
    return out


def _where_fixed(finding: Finding) -> Finding:
    """A finding with a fix says where it runs: what the check said, else its catalog entry's fix_on."""
    if not finding.fix.strip():
        return dataclasses.replace(finding, fix_on="") if finding.fix_on else finding
    if finding.fix_on:
        return finding
    doc = catalog().get(finding.id)
    return dataclasses.replace(finding, fix_on=doc.fix_on if doc and doc.fix_on else "guest")


def area_findings(facts: Facts, judged: Judged, areas: Iterable[str]) -> list[Finding]:
    """The findings of the named areas' checks, area by area as named (watch flags a frame's figures so)."""
    return [f for area in areas for f in importlib.import_module(f"{__name__}.{area}").run(facts, judged)]


_SETTINGS: Dict[str, Tuple[str, ...]] = {}


def settings_of(finding_id: str) -> tuple:
    """The settings a finding is about, from its module's FINDING_SETTINGS (the first matching pattern)."""
    if not _SETTINGS:
        for module in modules():
            patterns = getattr(module, "FINDING_SETTINGS", ())
            for i in module.FINDINGS:
                _SETTINGS[i] = next((s for pattern, s in patterns if fnmatch.fnmatchcase(i, pattern)), ())
    return _SETTINGS.get(finding_id, ())


def annotate(facts: Facts, judged: Judged, finding: Finding) -> Finding:
    """The finding with the other owners of what it is about in its evidence (judge's owners), when there are."""
    settings = settings_of(finding.id)
    if not settings or facts.agents is None:
        return finding
    nics = {n.name for n in facts.nics}
    iface = finding.subject if finding.subject in nics else None
    if iface is None:  # a route or tunnel finding names its device in the evidence
        iface = next((v for k, v in finding.evidence.items()
                      if k in ("dev", "lower", "nic") and isinstance(v, str) and v in nics), None)
    lines: List[str] = []
    for setting in settings:
        for owner in judged.owners(setting, iface):
            if owner.line() not in lines:
                lines.append(owner.line())
    if not lines:
        return finding
    return dataclasses.replace(finding, evidence=dict(finding.evidence, other_owners=lines))


def present_nics(facts: Facts, judged: Judged, kinds: Optional[set[str]] = None) -> list:
    """Every NIC but loopback, whatever its link state (see PRESENT)."""
    return [nic for nic in facts.nics if nic.link_type != 772 and judged.software_type(nic) != "loopback"
            and (kinds is None or judged.kind(nic) in kinds)]


def carries_traffic(nic) -> bool:
    return nic.operstate == "up" or (nic.operstate == "unknown" and bool(nic.admin_up) and bool(nic.carrier))


def traffic_nics(facts: Facts, judged: Judged, kinds: Optional[set[str]] = None) -> list:
    """NICs that carry traffic: up (or up with carrier where operstate is "unknown"), not loopback."""
    return [nic for nic in present_nics(facts, judged, kinds) if carries_traffic(nic)]


def uplink_veths(facts: Facts, judged: Judged) -> list:
    """veths that carry a default route: a container's own uplink, where queues and RPS are the guest's to set.
    Other veths (a container host's) are someone else's path and are not judged for steering."""
    devs = {r.dev for r in facts.path.routes} if facts.path is not None else set()
    return [nic for nic in present_nics(facts, judged, {"software"})
            if judged.software_type(nic) == "veth" and nic.name in devs]
