"""What fleet engines read from each VM: the Ansible local fact, and `guestcheck refresh` that rewrites it
together with node_exporter's textfile (guestcheck-metrics.timer runs it every 15 minutes).

/etc/ansible/facts.d/guestcheck.fact is static JSON, never an executable: Ansible runs an executable .fact on
every fact gathering and a failing one breaks the whole play (ansible/ansible#52427). It is written atomically
(mode 0644) when facts.d exists, or when /etc/guestcheck/guestcheck.conf says `[fleet] ansible_facts = yes`;
`no` turns it off. Ansible shows it as `ansible_local.guestcheck`.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict, Optional

from guestcheck import __version__
from guestcheck.atomicfile import write_output
from guestcheck.config import FleetSettings
from guestcheck.findings import Severity
from guestcheck.roots import Roots

FACT_SCHEMA = "guestcheck.ansible/1"
FACTS_DIR = "ansible/facts.d"  # under /etc
FACT_NAME = "guestcheck.fact"


def applied_profile(roots: Roots) -> Optional[str]:
    """The profile the tuner applied last (its journal), None when none or the journal is unreadable."""
    from guestcheck.tune import TuneError
    from guestcheck.tune.journal import load_state

    try:
        state = load_state(roots)
    except TuneError:
        return None
    return state.profile if state is not None else None


def fact_document(report: Any, profile: Optional[str], now: Optional[str] = None) -> Dict[str, Any]:
    """What `ansible_local.guestcheck` holds: status, the findings that are not ok, NIC kinds, the profile."""
    return {
        "schema": FACT_SCHEMA,
        "guestcheck_version": __version__,
        "status": report.status.label,
        "status_code": report.status.value,
        "findings": [{"id": f.id, "severity": f.severity.label, "subject": f.subject}
                     for f in report.findings if f.severity > Severity.OK],
        "nic_kinds": {n.name: report.verdicts.kind(n) for n in report.facts.nics},
        "profile": profile,
        "collected_at": report.facts.collected_at,
        "written_at": now or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def facts_dir(roots: Roots) -> str:
    return os.path.join(roots.etc, FACTS_DIR)


def write_ansible_fact(roots: Roots, report: Any, settings: FleetSettings,
                       profile: Optional[str]) -> Optional[str]:
    """Write guestcheck.fact where asked; its path, or None when not asked. Raises OSError (with the reason)
    when it cannot, or when facts.d resolves outside /etc (a symlink to elsewhere is not followed)."""
    from guestcheck.render.json import dumps

    directory = facts_dir(roots)
    if settings.ansible_facts == "no" or (settings.ansible_facts == "auto" and not os.path.isdir(directory)):
        return None
    etc = os.path.realpath(roots.etc)

    def inside_etc(path: str) -> bool:  # realpath resolves the existing part: a symlink anywhere is followed
        return os.path.commonpath([os.path.realpath(path), etc]) == etc

    if not inside_etc(directory):  # before any directory is made: never through a link that leads elsewhere
        raise OSError(f"{directory} leads outside {roots.etc}; not written")
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = os.path.join(directory, FACT_NAME)
    write_output(path, dumps(fact_document(report, profile)), 0o644, keep_mode=False)
    return path
