"""The report's status: a denied source leaves the result incomplete only when it could change a verdict
(issue 19: a Firecracker guest, where PID 1's environment is denied even to root, could never be ok)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guestcheck.collect import virt as virt_collector
from guestcheck.collect.fs import Read
from guestcheck.doctor import build_report
from guestcheck.facts import Facts
from guestcheck.findings import Status
from guestcheck.judge import judged_facts
from guestcheck.render import human
from tests.fakemachine import REPO, FakeMachine, from_snapshot


def _firecracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, own_pid_ns: bool = False) -> Facts:
    """The captured microVM as root sees it: Firecracker's ACPI OEM id readable, PID 1's environment denied
    (PID 1 holds CAP_SYS_RESOURCE), and the host's initial namespaces unless `own_pid_ns`."""
    m = from_snapshot("cloud-microvm-virtio", tmp_path / "root")
    m.write("sys/firmware/acpi/tables/DSDT", "DSDT\0\0\0\0\0\0FIRECKFCVMDSDT" + "\0" * 20)
    environ = m.write("proc/1/environ", "container=docker\0")  # what a reader must never get to see here
    if own_pid_ns:
        m.symlink("proc/self/ns/pid", "pid:[4026532300]")
    real_read = virt_collector.read

    def read(path: str) -> Read:
        return Read(None, "denied") if path == str(environ) else real_read(path)

    monkeypatch.setattr(virt_collector, "read", read)
    return judged_facts(m.collect())


def _doctor(facts: Facts, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    saved = tmp_path / "facts.json"
    saved.write_text(json.dumps(facts.to_dict()))
    return subprocess.run([sys.executable, "-m", "guestcheck", "doctor", "--facts", str(saved), *args],
                          capture_output=True, text=True, timeout=60, cwd=str(REPO),
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_firecracker_with_pid1_environ_denied_can_be_ok(tmp_path, monkeypatch):
    facts = _firecracker(tmp_path, monkeypatch)
    assert (facts.virt.hypervisor, facts.virt.container) == ("firecracker", None)
    assert any("/proc/1/environ" in str(p) for p in facts.problems)  # still named, as a note
    assert facts.complete and facts.virt.undecided == []
    out = _doctor(facts, tmp_path, "--skip", "QUEUES-SINGLE-VIRTIO")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == "guestcheck doctor: OK"
    assert "note: could not read " in out.stdout and "/proc/1/environ" in out.stdout


def test_pid1_environ_denied_in_a_namespace_is_unknown_and_says_why(tmp_path, monkeypatch):
    """In a PID namespace of its own, PID 1's container= variable is what names the manager: decisive."""
    facts = _firecracker(tmp_path, monkeypatch, own_pid_ns=True)
    assert facts.virt.container == "unknown"
    assert [p.endswith("1/environ") for p in facts.virt.undecided] == [True]
    out = _doctor(facts, tmp_path, "--skip", "QUEUES-SINGLE-VIRTIO")
    assert out.returncode == 3, out.stdout + out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("guestcheck doctor: UNKNOWN (container undecided, denied: ")
    assert first.endswith("/proc/1/environ)")


def test_the_reason_is_shown_only_when_the_status_is_unknown(tmp_path, monkeypatch):
    facts = _firecracker(tmp_path, monkeypatch, own_pid_ns=True)
    report = build_report(facts)  # QUEUES-SINGLE-VIRTIO warns: the warning is the status, the reason stays off the line
    assert report.status is Status.WARNING and report.incomplete
    assert human.render(report).splitlines()[0] == "guestcheck doctor: WARNING"


def test_an_area_not_read_and_a_failed_check_are_reasons_too(tmp_path, monkeypatch):
    m = FakeMachine(tmp_path)
    facts = m.collect()  # no /sys/class/net in this tree
    assert not facts.complete
    from guestcheck.checks import nic

    monkeypatch.setattr(nic, "run", lambda facts: 1 / 0)
    report = build_report(facts)
    assert report.status is Status.UNKNOWN
    assert report.incomplete == ["some facts could not be read (see the notes)", "check failed: nic"]
    assert human.render(report).splitlines()[0] == (
        "guestcheck doctor: UNKNOWN (some facts could not be read (see the notes); check failed: nic)")
