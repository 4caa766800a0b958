"""The command line's contract: one-line errors and documented exit codes, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from guestcheck.checks import catalog, modules
from tests.fakemachine import REPO, from_snapshot, snapshot_names


def guestcheck(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guestcheck", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, cwd=str(REPO))


def assert_one_line_error(out: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1, out.stderr


@pytest.mark.parametrize("content,why", [
    ("{not json", "is not JSON"),
    ('{"schema": "someone-else/1"}', "unsupported schema"),
    ("[1, 2]", "expected a JSON object"),
    ('{"schema": "guestcheck.facts/1", "nics": [{"name": 3}]}', "facts.nics[0].name: expected a string"),
    ('{"schema": "guestcheck.facts/1", "host": {"vcpus": "two"}}', "facts.host.vcpus: expected an integer"),
])
def test_bad_facts_files_are_refused_clearly(tmp_path, content, why):
    bad = tmp_path / "facts.json"
    bad.write_text(content)
    out = guestcheck("doctor", "--facts", str(bad))
    assert out.returncode == 3
    assert_one_line_error(out)
    assert why in out.stderr


def test_missing_facts_file(tmp_path):
    out = guestcheck("doctor", "--facts", str(tmp_path / "nope.json"))
    assert out.returncode == 3 and "cannot read" in out.stderr
    assert_one_line_error(out)


@pytest.mark.parametrize("name", snapshot_names())
def test_saved_facts_judge_like_the_machine(tmp_path, name):
    """A support engineer's workflow: facts saved on one machine, judged elsewhere, same findings."""
    machine = from_snapshot(name, tmp_path / "root")
    facts = machine.collect()
    saved = tmp_path / "facts.json"
    saved.write_text(json.dumps(facts.to_dict()))
    from guestcheck.doctor import build_report

    live = build_report(facts).to_dict()
    out = guestcheck("doctor", "--facts", str(saved), "--json")
    offline = json.loads(out.stdout)
    assert offline["findings"] == live["findings"]
    assert offline["status"] == live["status"]
    assert out.returncode == {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}[live["status"]]
    # a saved doctor report carries its facts and is accepted too
    report_file = tmp_path / "report.json"
    report_file.write_text(out.stdout)
    again = json.loads(guestcheck("doctor", "--facts", str(report_file), "--json").stdout)
    assert again["findings"] == live["findings"]


def test_explain_known_and_unknown_ids():
    out = guestcheck("explain", "nic-emulated")
    assert out.returncode == 0
    assert "<model type='virtio'/>" in out.stdout and "What it means" in out.stdout
    assert out.stdout.rstrip().endswith("Judged on:\n  every interface present, whatever its link state (down, or "
                                        "still coming up): the VM's configuration is wrong either way")
    assert "carry traffic" in guestcheck("explain", "OFFLOAD-TSO-OFF").stdout
    assert "Judged on" not in guestcheck("explain", "MEM-BALLOON").stdout
    out = guestcheck("explain", "NOPE-1")
    assert out.returncode != 0
    assert_one_line_error(out)
    listing = guestcheck("explain", "--list").stdout
    assert all(fid in listing for fid in catalog())


def test_usage_errors_on_doctor_are_nagios_unknown():
    out = guestcheck("doctor", "--no-such-flag")
    assert out.returncode == 3 and "Traceback" not in out.stderr
    out = guestcheck("doctor", "--only", "BOGUS-*")
    assert out.returncode == 3 and "unknown finding id" in out.stderr


@pytest.mark.parametrize("command", ["doctor", "facts"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e400", str(10**400), "3601", "", "0x10", "1_0"])
def test_bad_sample_is_a_usage_error_with_doctors_code(command, value):
    out = guestcheck(command, "--sample", value)
    assert out.returncode == 3 and out.stdout == ""
    assert_one_line_error(out)
    assert "is not a number of seconds from 0 to 3600" in out.stderr and len(out.stderr) < 400


def test_sample_text_rule():
    from guestcheck.quantities import MAX_SAMPLE_SECONDS, sample_seconds_from_text, seconds_from_text

    assert [sample_seconds_from_text(t) for t in ("0", " 2.5 ", ".5", "1.", "1e-3", "3600")] == \
        [0.0, 2.5, 0.5, 1.0, 0.001, MAX_SAMPLE_SECONDS]
    for bad in ("nan", "NaN", "infinity", "1e400", "9" * 5000, "-0.1", "1_0", "\u0661", "1e99999"):
        with pytest.raises(ValueError, match="is not a number of seconds") as e:
            sample_seconds_from_text(bad)
        assert len(str(e.value)) < 80
    with pytest.raises(ValueError, match="from 1 to 60"):
        seconds_from_text("0.5", 1, 60)


def test_explain_and_facts_usage_errors_are_unknown_too():
    assert guestcheck("facts", "--no-such-flag").returncode == 3  # README: doctor, facts, explain share codes
    assert guestcheck("explain", "NOPE-1").returncode == 3


def test_every_finding_id_is_documented_and_well_formed():
    for module in modules():
        for fid, doc in module.FINDINGS.items():
            assert re.fullmatch(r"[A-Z0-9]+(-[A-Z0-9]+)+", fid), fid
            assert doc.title and doc.why and doc.fix, fid
            assert doc.severity in ("ok", "info", "warning", "critical"), fid


@pytest.mark.parametrize("name", snapshot_names())
def test_findings_emitted_are_in_the_catalog(tmp_path, name):
    from guestcheck.doctor import build_report

    report = build_report(from_snapshot(name, tmp_path).collect())
    assert {f.id for f in report.findings} <= set(catalog())


def test_readme_documents_every_command():
    readme = (REPO / "README.md").read_text()
    import click

    from guestcheck.cli import cli

    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        assert f"guestcheck {name}" in readme, f"README does not mention `guestcheck {name}`"


def test_version_works_from_a_checkout():
    from guestcheck import __version__

    out = guestcheck("--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"guestcheck {__version__}")


# --- hostile facts files: one line, exit 3, never a traceback (issue 9) -------------------------------------

@pytest.mark.parametrize("content,why", [
    ('{"schema": "guestcheck.facts/1", "memory": {"total_bytes": ' + str(10**400) + "}}", "401 digits"),
    ('{"schema": "guestcheck.facts/1", "memory": {"total_bytes": 36893488147419103232}}',
     "facts.memory.total_bytes: integer out of range"),
    ('{"schema": "guestcheck.facts/1", "cpu_steal": {"percent": NaN}}', "NaN is not a JSON number"),
    ('{"schema": "guestcheck.facts/1", "cpu_steal": {"percent": 1e400}}', "out of range"),
    ('{"schema": "guestcheck.facts/1", "cpu_steal": {"percent": 1e300}}', "facts.cpu_steal.percent: number out of"),
    ('{"schema": "guestcheck.facts/1", "host": {"vcpus": 100000000}}', "facts.host.vcpus: 100000000 is out of range"),
    ('{"schema": "guestcheck.facts/1", "nics": [{"name": "\\ud800"}]}', "not valid Unicode text"),
    ('{"schema": "guestcheck.facts/1", "nics": [{"name": "x\\u001b[2J", "mtu": "x"}]}', "facts.nics[0].mtu"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ('{"schema": "guestcheck.facts/1", "nics": ' + "[" * 900 + "]" * 900 + "}", "expected an object"),
], ids=lambda v: v[:40] if len(v) < 200 else f"{len(v)} characters")  # a huge id would not fit in the environment
def test_hostile_facts_files_are_one_line_errors(tmp_path, content, why):
    bad = tmp_path / "facts.json"
    bad.write_text(content)
    for fmt in ("human", "json", "prometheus"):
        out = guestcheck("doctor", "--facts", str(bad), "--format", fmt)
        assert out.returncode == 3 and out.stdout == ""
        assert_one_line_error(out)
        assert why in out.stderr and "\x1b" not in out.stderr


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "facts.json"
    os.mkfifo(fifo)
    out = guestcheck("doctor", "--facts", str(fifo))
    assert out.returncode == 3 and "not a regular file" in out.stderr


def test_output_makes_no_directories_and_keeps_the_file_mode(tmp_path):
    facts = tmp_path / "facts.json"
    facts.write_text('{"schema": "guestcheck.facts/1"}')
    out = guestcheck("doctor", "--facts", str(facts), "-o", str(tmp_path / "typo/report.txt"))
    assert out.returncode == 3 and "does not exist" in out.stderr and not (tmp_path / "typo").exists()
    assert_one_line_error(out)
    report = tmp_path / "report.txt"
    report.write_text("old")
    report.chmod(0o600)
    out = guestcheck("doctor", "--facts", str(facts), "-o", str(report))
    assert out.returncode in (0, 1, 2) and (report.stat().st_mode & 0o777) == 0o600 and "doctor" in report.read_text()


# --- a newcomer's first contact (issue 13): each message says what happened ---------------------------------

def test_explain_takes_the_same_globs_as_only_and_unknown_is_exit_3():
    out = guestcheck("explain", "offload-*")
    titles = r"^([A-Z][A-Z0-9-]+): [^\n]*\nusual severity"
    shown = re.findall(titles, out.stdout, re.M)
    assert out.returncode == 0 and shown == sorted(i for i in catalog() if i.startswith("OFFLOAD-"))
    both = guestcheck("explain", "NIC-EMULATED,MEM-BALLOON")
    assert re.findall(titles, both.stdout, re.M) == ["MEM-BALLOON", "NIC-EMULATED"]
    for bad in ("NOPE-1", "NIC-EMULATED,NOPE-*", ","):
        out = guestcheck("explain", bad)
        assert out.returncode == 3, bad
        assert_one_line_error(out)
        assert "unknown finding id" in out.stderr


def test_skip_says_how_many_findings_it_left_out(tmp_path):
    from tests.fakemachine import FakeMachine

    m = FakeMachine(tmp_path / "root")
    m.set_dmi(sys_vendor="QEMU")
    m.add_nic("ens3", driver="e1000", pci_id="8086:100e", speed=1000, duplex="full")
    saved = tmp_path / "facts.json"
    saved.write_text(json.dumps(m.collect().to_dict()))
    out = guestcheck("doctor", "--facts", str(saved), "--skip", "NIC-*")
    assert "NIC-EMULATED" not in out.stdout
    assert re.search(r"^--skip left out \d+ finding\(s\): 1 critical", out.stdout, re.M), out.stdout
    assert "--skip" not in guestcheck("doctor", "--facts", str(saved)).stdout


def test_an_empty_interface_list_says_none(tmp_path):
    from tests.fakemachine import FakeMachine

    m = FakeMachine(tmp_path / "root")
    m.write("sys/class/net/.keep", "")
    saved = tmp_path / "facts.json"
    saved.write_text(json.dumps(m.collect().to_dict()))
    out = guestcheck("doctor", "--facts", str(saved))
    assert "\ninterfaces: none\n" in out.stdout, out.stdout


def test_tune_verify_with_nothing_applied_says_so(tmp_path):
    out = guestcheck("tune", "--root", str(tmp_path), "verify")
    assert out.returncode == 0
    assert out.stdout.startswith("nothing to verify: guestcheck has applied nothing here")


@pytest.mark.root  # becomes nobody, who must be able to read the checkout (not so in a .deb build's temp copy)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_non_root_tune_apply_suggests_sudo(tmp_path):
    out = subprocess.run([sys.executable, "-m", "guestcheck", "tune", "apply", "many-connections"],
                         capture_output=True, text=True, timeout=60, cwd="/", preexec_fn=lambda: os.setuid(65534),
                         env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 3
    assert_one_line_error(out)
    assert out.stderr.rstrip().endswith("(you are not root: try `sudo guestcheck tune apply many-connections`)")


@pytest.mark.parametrize("args", [["tune", "list"], ["doctor", "--only", "NIC-*"], ["explain", "--list"]])
def test_a_missing_library_is_one_line_naming_the_debian_package(args):
    # `sys.modules[name] = None` makes every import of it fail as an uninstalled library does
    code = f"import sys; sys.modules['click'] = None; from guestcheck.entry import main; main({args!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 3 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "guestcheck: the Python library 'click' is missing: install python3-click (apt-get install python3-click), "
        "or `pip install click` where guestcheck was installed with pip"]


def test_missing_library_names_each_package_and_nothing_else():
    from guestcheck.exits import guarded, missing_library

    def fails(name: str):
        def run() -> int:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return run

    for library in ("click", "psutil", "pyroute2", "pyudev", "distro"):
        assert f"install python3-{library} " in missing_library(ModuleNotFoundError(name=f"{library}.sub"))
    assert missing_library(ModuleNotFoundError(name="guestcheck.nope")) is None  # a bug, not a library
    assert guarded(fails("pyudev")) == 3
    assert guarded(fails("guestcheck.nope")) == 3  # still no traceback: "internal error"


@pytest.mark.skipif(not __import__("shutil").which("iperf3"), reason="needs iperf3")
def test_selftest_against_a_one_shot_server_shows_the_first_run():
    import socket

    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listening = f"0100007F:{port:04X} 00000000:0000 0A"  # /proc/net/tcp: 127.0.0.1:port, LISTEN
        for _ in range(50):  # until it listens (a probing connect would use up its one test)
            with open("/proc/net/tcp") as f:
                if listening in f.read():
                    break
            __import__("time").sleep(0.1)
        out = guestcheck("selftest", "--peer", f"127.0.0.1:{port}", "--expect", "1G", "--duration", "1")
    finally:
        server.kill()
        server.wait()
    assert out.returncode == 11, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "runs finished before the error:"
    assert re.match(r"  upload +1 stream +[\d.]+ [GM]bit/s", lines[1]), out.stdout
    assert "the first run worked, so the server may serve one test only" in out.stderr
