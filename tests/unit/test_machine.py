"""The collection loop (guestcheck/collect/machine.py): collectors found from their modules, run in Facts' order,
and isolated: one that raises leaves a typed problem naming its area, and every other area is still reported."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from guestcheck.collect import machine, softirq
from guestcheck.doctor import build_report
from guestcheck.facts import Facts, Problem, facts_from_dict
from tests.fakemachine import REPO, FakeMachine


def _machine(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("ens3", driver="virtio_net", pci_id="1af4:1041", pci_subsystem_id="1af4:1100")
    return m


def test_every_area_of_facts_has_exactly_one_collector_declared_in_its_module():
    areas = [area for area, _ in machine.collectors()]
    fields = [f.name for f in dataclasses.fields(Facts)
              if f.name not in machine.BOOKKEEPING + machine.FILLED_AROUND]
    assert areas == fields  # in Facts' order: the problems keep the order they always had
    for area, module in machine.collectors():
        assert area == module.AREA and callable(module.collect)


def test_a_collector_that_raises_leaves_a_problem_naming_its_area_and_the_rest_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("GUESTCHECK_DEBUG", raising=False)

    def boom(run):
        raise RuntimeError("a bug in the softirq collector")

    monkeypatch.setattr(softirq, "collect", boom)
    facts = _machine(tmp_path).collect(sample_seconds=0)
    assert Problem("failed", "softirq", "RuntimeError: a bug in the softirq collector") in facts.problems
    assert not facts.complete and facts.softirq is None
    assert [n.name for n in facts.nics] == ["ens3"] and facts.memory is not None  # the other areas are there
    assert facts.conntrack is not None and facts.sample_seconds == 0  # sampled ones after it too
    report = build_report(facts)
    assert report.findings  # judged as usual, with the area unknown


def test_a_failed_problem_survives_a_facts_file_as_its_line():
    problem = Problem("failed", "softirq", "RuntimeError: boom")
    assert str(problem) == "could not collect softirq: RuntimeError: boom"
    facts = Facts(problems=[problem, Problem("denied", "/proc/1/environ", "why; run as root"), Problem.note("n")])
    doc = json.loads(json.dumps(facts.to_dict()))
    assert doc["problems"] == ["could not collect softirq: RuntimeError: boom",
                               "permission denied: /proc/1/environ (why; run as root)", "n"]
    assert facts_from_dict(doc).problems == facts.problems


@pytest.mark.parametrize("text", ["permission denied: /sys/firmware/dmi/tables/DMI (SMBIOS; run as root)",
                                  "/sys/class/net is not readable: is sysfs mounted?", "", "permission denied: x",
                                  "could not collect softirq: RuntimeError: x (y)"])
def test_problem_parse_gives_back_the_same_line(text):
    assert str(Problem.parse(text)) == text
    assert Problem.parse(Problem.parse(text)) == Problem.parse(text)


def test_collector_debugging_lets_the_exception_through(tmp_path, monkeypatch):
    monkeypatch.setenv("GUESTCHECK_DEBUG", "1")
    monkeypatch.setattr(softirq, "collect", lambda run: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        _machine(tmp_path).collect(sample_seconds=0)


def test_doctor_on_a_fake_root_with_a_failing_collector_reports_instead_of_internal_error(tmp_path):
    """The intended behaviour change: no "internal error", a report with the problem, every other area."""
    _machine(tmp_path).write_ethtool()
    code = ("import sys\nimport guestcheck.collect.memory as m\n"
            "def boom(run):\n    raise ValueError('bad line in meminfo')\n"
            "m.collect = boom\nfrom guestcheck.entry import main\nmain(sys.argv[1:])")
    env = {k: v for k, v in os.environ.items() if k != "GUESTCHECK_DEBUG"}
    env.update({"GUESTCHECK_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)})
    for args in (["doctor", "--json", "--sample", "0"], ["facts", "--json", "--sample", "0"]):  # fast path, click
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                             timeout=60)
        assert "internal error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
        doc = json.loads(out.stdout)
        facts = doc.get("facts", doc)
        assert "could not collect memory: ValueError: bad line in meminfo" in facts["problems"]
        assert facts["memory"] is None and facts["complete"] is False
        assert [n["name"] for n in facts["nics"]] == ["ens3"]
        assert out.returncode in ((0, 1, 2, 3) if args[0] == "doctor" else (0,))
    human = subprocess.run([sys.executable, "-c", code, "doctor", "--sample", "0"], capture_output=True, text=True,
                           env=env, timeout=60)
    assert "note: could not collect memory: ValueError: bad line in meminfo" in human.stdout
