"""fleet.py: the Ansible local fact (when, where, what) and the [fleet] settings."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from guestcheck.config import FleetSettings, load_fleet_settings
from guestcheck.facts import Facts, Nic
from guestcheck.findings import Finding, Severity, Status
from guestcheck.fleet import fact_document, write_ansible_fact
from guestcheck.report import Report
from guestcheck.roots import Roots
from tests.judged import recorded


def _report() -> Report:
    facts = Facts(collected_at="2026-11-26T12:00:00+00:00", nics=[Nic(name="eth0", kind="paravirtual")])
    return Report(facts, [Finding("NIC-EMULATED", Severity.CRITICAL, "ens3", "e1000"),
                          Finding("VIRT-PLATFORM", Severity.OK, "machine", "kvm")], Status.CRITICAL,
                  judged=recorded(facts))


def test_the_document_holds_status_findings_kinds_profile_and_time():
    doc = fact_document(_report(), "throughput", now="2026-11-26T12:00:05+00:00")
    assert doc["status"] == "critical" and doc["status_code"] == 2
    assert doc["findings"] == [{"id": "NIC-EMULATED", "severity": "critical", "subject": "ens3"}]  # no ok ones
    assert doc["nic_kinds"] == {"eth0": "paravirtual"} and doc["profile"] == "throughput"
    assert doc["collected_at"] == "2026-11-26T12:00:00+00:00" and doc["written_at"] == "2026-11-26T12:00:05+00:00"
    assert doc["schema"] == "guestcheck.ansible/1"


def test_auto_writes_only_where_facts_d_exists(tmp_path):
    roots = Roots.under(str(tmp_path))
    assert write_ansible_fact(roots, _report(), FleetSettings("auto"), None) is None
    assert not (tmp_path / "etc/ansible").exists()
    (tmp_path / "etc/ansible/facts.d").mkdir(parents=True)
    path = write_ansible_fact(roots, _report(), FleetSettings("auto"), None)
    assert path == str(tmp_path / "etc/ansible/facts.d/guestcheck.fact")
    mode = os.stat(path).st_mode
    assert stat.S_IMODE(mode) == 0o644 and not mode & 0o111  # static JSON, never an executable
    assert json.loads(Path(path).read_text())["status"] == "critical"
    assert os.listdir(tmp_path / "etc/ansible/facts.d") == ["guestcheck.fact"]  # no temp file left


def test_yes_makes_the_directory_and_no_never_writes(tmp_path):
    roots = Roots.under(str(tmp_path))
    (tmp_path / "etc").mkdir()
    assert write_ansible_fact(roots, _report(), FleetSettings("no"), None) is None
    assert write_ansible_fact(roots, _report(), FleetSettings("yes"), None)
    assert (tmp_path / "etc/ansible/facts.d/guestcheck.fact").is_file()


def test_a_facts_d_that_leads_outside_etc_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "etc/ansible").mkdir(parents=True)
    (tmp_path / "etc/ansible/facts.d").symlink_to(outside)
    with pytest.raises(OSError, match="leads outside"):
        write_ansible_fact(Roots.under(str(tmp_path)), _report(), FleetSettings("auto"), None)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("text,expected,problems", [
    ("", "auto", 0),
    ("[fleet]\nansible_facts = yes\n", "yes", 0),
    ("[fleet]\nansible_facts = Off\n", "no", 0),
    ("[fleet]\nansible_facts = maybe\n", "auto", 1),
    ("[fleet]\nnope = 1\n", "auto", 1),
    ("not ini", "auto", 0),  # firstboot's settings report a broken file once
])
def test_settings(tmp_path, text, expected, problems):
    conf = tmp_path / "etc/guestcheck/guestcheck.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(text)
    settings = load_fleet_settings(Roots.under(str(tmp_path)))
    assert settings.ansible_facts == expected and len(settings.problems) == problems
