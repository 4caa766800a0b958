"""guestcheck/facts.py: names that are not UTF-8 round-trip through facts/1 and doctor/1 (issue 18, item 9).

The kernel's names are bytes. In memory an undecodable byte is a lone surrogate (surrogateescape); in JSON it is
the text `\\xff`, valid UTF-8 that jq and any strict reader take, and `doctor --facts` reads it back as the same
byte: the same findings as on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guestcheck.facts import FactsError, facts_from_dict
from guestcheck.strictjson import text_from_json, text_to_json
from tests.fakemachine import REPO, FakeMachine

NAME = b"n\xff".decode("utf-8", "surrogateescape")


def _fake_root(base: Path) -> FakeMachine:
    m = FakeMachine(base)
    m.add_nic("eth0", driver="e1000", pci_id="8086:100e", ifindex=2)
    m.add_nic(NAME, driver="e1000", pci_id="8086:100e", ifindex=3, mac="52:54:00:12:34:57", mtu=1400)
    m.write_ethtool()
    return m


def _guestcheck(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "guestcheck", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=str(REPO))


def test_a_name_with_byte_0xff_round_trips_through_facts_and_doctor(tmp_path):
    m = _fake_root(tmp_path / "root")
    assert os.path.isdir(os.path.join(os.fsencode(m.base), b"sys/class/net/n\xff"))
    out = _guestcheck(m.base, "facts", "--json", "--sample", "0")
    assert out.returncode == 0, out.stderr
    raw = out.stdout.encode("utf-8")  # valid UTF-8: no lone surrogate in what facts --json writes
    document = json.loads(raw)
    assert "n\\xff" in [n["name"] for n in document["nics"]]  # printable and pasteable: n\xff
    saved = tmp_path / "facts.json"
    saved.write_bytes(raw)
    direct = _guestcheck(m.base, "doctor", "--json", "--sample", "0")
    replayed = _guestcheck(m.base, "doctor", "--facts", str(saved), "--json")
    assert replayed.returncode == direct.returncode, replayed.stderr
    findings = json.loads(direct.stdout)["findings"]
    assert json.loads(replayed.stdout)["findings"] == findings
    assert any(f["subject"] == "n\\xff" for f in findings)  # doctor/1 writes the name as facts/1 does
    # a saved doctor report is accepted back too, with the same findings
    report = tmp_path / "report.json"
    report.write_text(direct.stdout)
    again = _guestcheck(m.base, "doctor", "--facts", str(report), "--json")
    assert json.loads(again.stdout)["findings"] == findings


def test_facts_files_of_older_versions_still_read_the_same():
    """Text without `\\\\` or `\\xHH` (80-ff) reads as it always did; an old file's lone surrogate for a byte
    (what guestcheck wrote before) is that byte; any other lone surrogate is refused."""
    old = {"schema": "guestcheck.facts/1", "nics": [{"name": "a\\b"}, {"name": "\\x41"}, {"name": "n\udcff"}]}
    assert [n.name for n in facts_from_dict(old).nics] == ["a\\b", "\\x41", NAME]
    with pytest.raises(FactsError, match="lone surrogate"):
        facts_from_dict({"schema": "guestcheck.facts/1", "nics": [{"name": "\ud800"}]})


@pytest.mark.parametrize("text,written", [
    (NAME, "n\\xff"),
    ("\\xff", "\\\\xff"),  # a name that is those four characters keeps them
    ("a\\\\b", "a\\\\\\b"),
    ("a\\b", "a\\b"),
    ("\\\udcff", "\\\\\\xff"),  # a backslash before an undecodable byte is doubled
    ("tab\\t", "tab\\t"),
    ("é" * 300 + NAME * 300 + "\\" * 301, "é" * 300 + "n\\xff" * 300 + "\\" * 601),  # the long-text path
], ids=lambda v: repr(v[:12]))
def test_the_representation(text, written):
    assert text_to_json(text) == written
    assert text_from_json(written) == text


# --- typed problems (issue 20): kind, source, text; facts/1 keeps the strings it always had ---

from guestcheck.facts import Facts, Problem  # noqa: E402

DENIED = "permission denied: /proc/1/environ (names the container manager; run as root)"


@pytest.mark.parametrize("line", [DENIED, "permission denied: /sys/firmware/acpi/tables/DSDT",
                                  "permission denied: /x (unclosed", "/sys/class/net is not readable",
                                  "", "permission denied: "])
def test_a_problem_string_reads_back_to_the_same_string(line):
    assert str(Problem.parse(line)) == line


def test_a_denied_problem_names_its_source_and_why():
    p = Problem.parse(DENIED)
    assert (p.kind, p.source, p.text) == ("denied", "/proc/1/environ", "names the container manager; run as root")
    assert Problem.parse("could not read x").kind == "note"
    failed = Problem("failed", "nics", "ValueError: the collector failed")  # a collector that raised (machine.py)
    assert str(failed) == "could not collect nics: ValueError: the collector failed"
    assert Problem.parse(str(failed)) == failed


def test_problems_are_strings_in_facts1_and_typed_in_memory():
    facts = Facts(problems=[Problem("denied", "/proc/1/environ", "names the container manager; run as root"),
                            Problem("note", "host", "no os-release")])
    doc = facts.to_dict()
    assert doc["problems"] == [DENIED, "no os-release"]
    again = facts_from_dict(json.loads(json.dumps(doc)))
    assert again.problems == [Problem("denied", "/proc/1/environ", "names the container manager; run as root"),
                              Problem("note", "", "no os-release")]  # the area is not in facts/1
    with pytest.raises(FactsError):
        facts_from_dict({**doc, "problems": [1]})
