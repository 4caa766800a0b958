"""`guestcheck doctor --format human|json|prometheus`, `--output`, `--textfile-dir`: the real command, end to end."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakemachine import REPO, FakeMachine
from tests.unit.test_prometheus import parse


def guestcheck(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guestcheck", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))


@pytest.fixture
def e1000_facts(tmp_path: Path) -> Path:
    """A KVM guest whose only NIC is an emulated e1000: NIC-EMULATED, critical."""
    machine = FakeMachine(tmp_path / "root")
    machine.set_dmi(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)")
    machine.add_nic("ens3", driver="e1000", pci_id="8086:100e", speed=1000, duplex="full")
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(machine.collect().to_dict()))
    return path


def checks_of(text: str) -> dict[tuple[str, str], str]:
    return {(lb["id"], lb["subject"]): lb["severity"] for n, lb, _ in parse(text) if n == "guestcheck_check_severity"}


def test_prometheus_to_stdout(e1000_facts):
    out = guestcheck("doctor", "--facts", str(e1000_facts), "--format", "prometheus")
    assert out.returncode == 2, out.stderr
    assert checks_of(out.stdout)[("NIC-EMULATED", "ens3")] == "critical"
    assert ("guestcheck_status", {"status": "critical"}, 2.0) in parse(out.stdout)


def test_json_flag_is_an_alias_of_format_json(e1000_facts):
    a = guestcheck("doctor", "--facts", str(e1000_facts), "--json")
    b = guestcheck("doctor", "--facts", str(e1000_facts), "--format", "json")
    assert a.returncode == b.returncode == 2
    assert json.loads(a.stdout) == json.loads(b.stdout)
    assert json.loads(a.stdout)["schema"] == "guestcheck.doctor/1"


def test_human_is_the_default(e1000_facts):
    out = guestcheck("doctor", "--facts", str(e1000_facts))
    assert out.stdout.startswith("guestcheck doctor: CRITICAL")
    assert "\033[" not in out.stdout


def test_textfile_dir_writes_guestcheck_prom(e1000_facts, tmp_path):
    textfiles = tmp_path / "node-exporter"
    textfiles.mkdir()
    out = guestcheck("doctor", "--facts", str(e1000_facts), "--textfile-dir", str(textfiles))
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert sorted(os.listdir(textfiles)) == ["guestcheck.prom"]
    assert checks_of((textfiles / "guestcheck.prom").read_text())[("NIC-EMULATED", "ens3")] == "critical"


@pytest.mark.parametrize("fmt", ["human", "json", "prometheus"])
def test_output_file_holds_what_stdout_would(e1000_facts, tmp_path, fmt):
    target = tmp_path / f"report.{fmt}"
    out = guestcheck("doctor", "--facts", str(e1000_facts), "--format", fmt, "--output", str(target))
    shown = guestcheck("doctor", "--facts", str(e1000_facts), "--format", fmt)
    assert out.returncode == 2 and out.stdout == ""
    if fmt == "json":  # facts carry no clock, but compare parsed to be safe about key order
        assert json.loads(target.read_text()) == json.loads(shown.stdout)
    else:
        assert target.read_text() == shown.stdout


@pytest.mark.parametrize("args,why", [
    (["--json", "--format", "human"], "--json and --format human disagree"),
    (["--format", "json", "--textfile-dir", "DIR"], "--textfile-dir writes the prometheus format only"),
    (["--output", "F", "--textfile-dir", "DIR"], "either --output or --textfile-dir"),
    (["--format", "yaml"], "Invalid value for '--format'"),
])
def test_conflicting_options_are_usage_errors(e1000_facts, args, why):
    out = guestcheck("doctor", "--facts", str(e1000_facts), *args)
    assert out.returncode == 3
    assert "Traceback" not in out.stderr
    assert why in out.stderr


def test_unwritable_output_is_one_line_and_unknown(e1000_facts, tmp_path):
    (tmp_path / "guestcheck.prom").mkdir()  # the rename onto it fails
    out = guestcheck("doctor", "--facts", str(e1000_facts), "--textfile-dir", str(tmp_path))
    assert out.returncode == 3
    assert "Traceback" not in out.stderr
    assert [ln for ln in out.stderr.splitlines() if ln.startswith("Error")] == [
        f"Error: cannot write {tmp_path}/guestcheck.prom: Is a directory"]


@pytest.mark.parametrize("missing", ["node-exporter", "file/sub"])
def test_textfile_dir_that_does_not_exist_is_an_error(e1000_facts, tmp_path, missing):
    (tmp_path / "file").write_text("")
    out = guestcheck("doctor", "--facts", str(e1000_facts), "--textfile-dir", str(tmp_path / missing))
    assert out.returncode == 3
    assert "Traceback" not in out.stderr
    assert f"Error: --textfile-dir {tmp_path / missing}: no such directory" in out.stderr
    assert not (tmp_path / "node-exporter").exists()  # nothing made


def test_json_and_another_format_disagree_on_the_fast_path_too():
    # no --facts: entry.py's click-free path parses this, and must refuse it as click does
    for args in (["--json", "--format", "human"], ["--format=prometheus", "--json"]):
        out = guestcheck("doctor", *args, "--sample", "0")
        assert out.returncode == 3 and "disagree" in out.stderr, out.stderr
    assert json.loads(guestcheck("doctor", "--format", "json", "--json", "--sample", "0").stdout)["schema"]


def test_output_to_a_character_device_keeps_the_device_and_the_verdict(e1000_facts, tmp_path):
    # `-o /dev/null` (only the exit code wanted) must never replace /dev/null: a mknod'ed one stands in for it
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    for args in (["-o", str(null)], ["--format", "prometheus", "-o", str(null)]):
        out = guestcheck("doctor", "--facts", str(e1000_facts), *args)
        assert out.returncode == 2 and out.stderr == "" and out.stdout == ""
        assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)
    assert sorted(os.listdir(tmp_path)) == ["facts.json", "null", "root"]


def test_output_to_a_link_to_stdout_writes_stdout(e1000_facts, tmp_path):
    # /dev/stdout is a symlink to /proc/self/fd/1: a link of our own to the same stands in for it
    (tmp_path / "stdout").symlink_to("/proc/self/fd/1")
    out = guestcheck("doctor", "--facts", str(e1000_facts), "--format", "prometheus", "-o", str(tmp_path / "stdout"))
    assert out.returncode == 2, out.stderr
    assert checks_of(out.stdout)[("NIC-EMULATED", "ens3")] == "critical"
    assert os.readlink(tmp_path / "stdout") == "/proc/self/fd/1"


@pytest.mark.parametrize("kind", ["fifo", "socket", "symlink"])
def test_output_that_cannot_be_written_is_one_line_and_exit_3(e1000_facts, tmp_path, kind):
    import socket

    target = tmp_path / "out"
    keep = None
    if kind == "fifo":
        os.mkfifo(target)  # no reader: an error at once, never a hang
        why = "it is a FIFO with no reader (start the reader first)"
    elif kind == "socket":
        keep = socket.socket(socket.AF_UNIX)
        keep.bind(str(target))
        why = "it is a socket; only a regular file, a character device or a FIFO is written"
    else:
        (tmp_path / "victim").write_text("precious")
        target.symlink_to(tmp_path / "victim")
        why = "it is a symbolic link, not followed to a file (name the file itself, or remove the link)"
    try:
        out = guestcheck("doctor", "--facts", str(e1000_facts), "-o", str(target))
    finally:
        if keep is not None:
            keep.close()
    assert out.returncode == 3
    assert out.stderr.splitlines() == [f"Error: cannot write {target}: {why}"]
    assert kind != "symlink" or (tmp_path / "victim").read_text() == "precious"
