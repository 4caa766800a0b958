"""TCP congestion control: the collector on fake /proc trees, the Reno check, its fix and hint, and a saved file.

`fix_catalog_machines()` hands the fix catalog's corpus (tests/unit/test_fix_catalog.py) the machines on which this
check gives its guest fix, so the catalog audits it without a list there naming this area.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from guestcheck.checks import catalog, guest_fix_ids
from guestcheck.checks import congestion as check
from guestcheck.collect.congestion import collect_congestion
from guestcheck.doctor import build_report
from guestcheck.facts import Congestion, Facts, OtherAgents, facts_from_dict
from tests.fakemachine import FakeMachine
from tests.judged import with_recorded

IPV4 = "proc/sys/net/ipv4"


def machine(tmp_path: Path, control: str = "cubic", available: str = "reno cubic",
            allowed: str = "reno cubic") -> FakeMachine:
    m = FakeMachine(tmp_path)
    m.write(f"{IPV4}/tcp_congestion_control", control + "\n")
    m.write(f"{IPV4}/tcp_available_congestion_control", available + "\n")
    m.write(f"{IPV4}/tcp_allowed_congestion_control", allowed + "\n")
    return m


def findings(cc: Congestion, **facts):
    return check.run(*with_recorded(Facts(congestion=cc, **facts)))


def test_the_collector_reads_the_three_files(tmp_path):
    m = machine(tmp_path, "reno", "reno cubic bbr", "reno cubic")
    assert collect_congestion(m.roots) == Congestion("reno", ["reno", "cubic", "bbr"], ["reno", "cubic"])


def test_missing_files_leave_the_control_unknown_and_nothing_is_judged(tmp_path):
    m = FakeMachine(tmp_path)
    assert collect_congestion(m.roots) == Congestion(None, [], [])
    assert findings(Congestion(None, [])) == []
    assert findings(None) == []  # a facts file from before this area


def test_the_loop_collects_the_area_from_the_module(tmp_path):
    facts = machine(tmp_path, "reno").collect()
    assert facts.congestion == Congestion("reno", ["reno", "cubic"], ["reno", "cubic"])
    (reno,) = [f for f in build_report(facts).findings if f.id.startswith("TCP-CONGESTION")]
    assert reno.id == "TCP-CONGESTION-RENO" and reno.fix_on == "guest"


def test_reno_is_a_warning_whose_fix_is_one_pasteable_sysctl():
    (f,) = findings(Congestion("reno", ["reno", "cubic"]))
    assert (f.id, f.severity.label, f.subject) == ("TCP-CONGESTION-RENO", "warning", "tcp")
    assert f.fix == "sysctl -w net.ipv4.tcp_congestion_control=cubic"
    assert f.evidence == {"control": "reno", "available": ["reno", "cubic"], "allowed": []}
    assert "/etc/sysctl.d/" in f.hint and "bbr" not in f.hint.lower()


def test_the_hint_offers_bbr_only_where_it_is_loaded():
    (f,) = findings(Congestion("reno", ["reno", "cubic", "bbr"]))
    assert "sysctl -w net.ipv4.tcp_congestion_control=bbr" in f.hint
    assert f.fix == "sysctl -w net.ipv4.tcp_congestion_control=cubic"  # CUBIC stays the fix: the kernel's default


def test_a_namespace_that_may_not_choose_cubic_gets_a_control_it_may_choose():
    """The kernel refuses a control outside tcp_allowed_congestion_control in a namespace other than the host's
    ("Operation not permitted"): the host's default (bbr here) is allowed, CUBIC is not."""
    (f,) = findings(Congestion("reno", ["reno", "bbr", "cubic"], ["reno", "bbr"]))
    assert f.fix == "sysctl -w net.ipv4.tcp_congestion_control=bbr"
    assert "tcp_allowed_congestion_control (reno bbr)" in f.hint and "=cubic works too" in f.hint
    assert "BBR is loaded too" not in f.hint
    (cubic,) = findings(Congestion("reno", ["reno", "bbr", "cubic"], ["reno", "bbr", "cubic"]))
    assert cubic.fix.endswith("=cubic") and "BBR is loaded too" in cubic.hint
    (only_reno,) = findings(Congestion("reno", ["reno", "cubic"], ["reno"]))
    assert only_reno.fix.endswith("=cubic") and "the host's admin adds cubic" in only_reno.hint


def test_a_hostile_saved_file_gets_one_quoted_word_in_the_fix():
    (f,) = findings(Congestion("reno", ["reno"], ["reno", "x;curl x|sh"]))
    assert f.fix == "sysctl -w net.ipv4.tcp_congestion_control='x;curl x|sh'"


def test_a_kernel_that_does_not_offer_cubic_yet_loads_it_first():
    (f,) = findings(Congestion("reno", ["reno"]))
    assert f.fix.splitlines() == ["modprobe tcp_cubic", "sysctl -w net.ipv4.tcp_congestion_control=cubic"]
    (unknown,) = findings(Congestion("reno", []))  # nothing said what is on offer: CUBIC is the kernel's default
    assert unknown.fix == "sysctl -w net.ipv4.tcp_congestion_control=cubic"


@pytest.mark.parametrize("control", ["cubic", "bbr", "dctcp", "htcp"])
def test_anything_but_reno_is_ok_with_nothing_to_run(control):
    (f,) = findings(Congestion(control, ["reno", control]))
    assert (f.id, f.severity.label, f.fix, f.fix_on) == ("TCP-CONGESTION-OK", "ok", "", "")
    assert control in f.summary


def test_tuned_owning_the_key_is_named_in_the_evidence():
    agents = OtherAgents(tuned_profiles=["throughput-performance"],
                         tuned_sysctl={"net.ipv4.tcp_congestion_control": "reno"},
                         tuned_sysctl_files={"net.ipv4.tcp_congestion_control": "/etc/tuned/x/tuned.conf"})
    report = build_report(Facts(congestion=Congestion("reno", ["reno", "cubic"], ["reno", "cubic"]), agents=agents))
    (f,) = [f for f in report.findings if f.id == "TCP-CONGESTION-RENO"]
    assert any(line.startswith("TuneD: ") for line in f.evidence["other_owners"])


def test_the_catalog_knows_both_ids_and_reno_has_a_guest_fix():
    docs = catalog()
    assert docs["TCP-CONGESTION-RENO"].severity == "warning" and docs["TCP-CONGESTION-OK"].fix_on == ""
    assert "TCP-CONGESTION-RENO" in guest_fix_ids() and "TCP-CONGESTION-OK" not in guest_fix_ids()


def test_a_saved_facts_file_keeps_the_area_and_an_old_one_reads_without_it():
    facts = Facts(congestion=Congestion("reno", ["reno", "cubic"], ["reno", "cubic"]))
    doc = json.loads(json.dumps(facts.to_dict()))
    assert doc["congestion"] == {"control": "reno", "available": ["reno", "cubic"], "allowed": ["reno", "cubic"]}
    assert facts_from_dict(doc).congestion == facts.congestion
    del doc["congestion"]
    assert facts_from_dict(doc).congestion is None


def fix_catalog_machines() -> Iterator[Tuple[str, Facts]]:
    """Machines on which this check gives a guest fix: read by the fix catalog's corpus."""
    from tests.unit.test_ok_states import base

    for label, available, allowed in (("reno, cubic on offer", ["reno", "cubic", "bbr"], ["reno", "cubic"]),
                                      ("a namespace allowed bbr", ["reno", "bbr", "cubic"], ["reno", "bbr"]),
                                      ("reno only", ["reno"], [])):
        facts = base()
        facts.congestion = Congestion("reno", available, allowed)
        yield label, facts
