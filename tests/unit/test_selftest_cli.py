"""`guestcheck selftest` at the command line: bad input gets one line and its own exit code, never a
traceback; the exit codes and the JSON schema are documented. Nothing here touches the network: every
case stops before iperf3 would run (the live tests run it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from guestcheck.selftest import errors

REPO = Path(__file__).resolve().parents[2]


def selftest(*args: str, path: str = "", cwd: str = "", root: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if root:
        env["GUESTCHECK_ROOT"] = root
    if path:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "guestcheck", "selftest", *args], capture_output=True, text=True,
                          env=env, timeout=60, cwd=cwd or None)


@pytest.mark.parametrize("args,code,message", [
    (["--peer", "10.0.0.2", "--expect", "1Q"], errors.BAD_INPUT, "Invalid value for '--expect': '1Q' is not a rate"),
    (["--peer", "10.0.0.2", "--expect", "100MB"], errors.BAD_INPUT, "not bytes"),
    (["--peer", "10.0.0.2", "--duration", "0"], errors.BAD_INPUT, "must be whole seconds from 1 to 3600"),
    (["--peer", "10.0.0.2", "--duration", "1.5"], errors.BAD_INPUT, "must be whole seconds"),
    (["--peer", "10.0.0.2", "--duration", "soon"], errors.BAD_INPUT, "is not a duration"),
    (["--peer", "10.0.0.2", "--timeout", "-1"], errors.BAD_INPUT, "is not a duration"),
    (["--peer", "10.0.0.2", "--parallel", "0"], errors.BAD_INPUT, "--parallel"),
    (["--peer", "-s"], errors.BAD_INPUT, "bad peer '-s': starts with '-'"),
    (["--peer", "a;reboot"], errors.BAD_INPUT, "is neither an IP address nor a host name"),
    (["--peer", "10.0.0.2:99999"], errors.BAD_INPUT, "port '99999'"),
    (["--peer", "host:\u00b2"], errors.BAD_INPUT, "is not a number from 1 to 65535"),  # '²'.isdigit() is True
    (["--peer", "[fd00::2]:\u0663"], errors.BAD_INPUT, "is not a number from 1 to 65535"),  # int('٣') is 3
    (["--peer", "10.0.0.2", "--parallel", "\uff12"], errors.BAD_INPUT, "--parallel"),  # fullwidth 2
    (["--peer", "10.0.0.2:5201", "--port", "5301"], errors.BAD_INPUT, "--port 5301 disagrees"),
    ([], errors.BAD_INPUT, "give --peer HOST[:PORT] to test against, or --serve"),
    (["--serve", "--expect", "1G"], errors.BAD_INPUT, "--expect does not go with --serve"),
    (["--serve", "--peer", "10.0.0.2"], errors.BAD_INPUT, "--peer does not go with --serve"),
    (["--peer", "10.0.0.2", "--once"], errors.BAD_INPUT, "--once does not go with --peer"),
    (["--serve", "--bind", "myhost"], errors.BAD_INPUT, "give an IP address"),
    (["--peer", "10.0.0.2", "--frobnicate"], errors.BAD_INPUT, "--frobnicate"),  # wording varies by click
    (["--peer", "10.0.0.2", "--compare", "/nonexistent/before.json"], errors.FILE_ERROR, "cannot read"),
])
def test_bad_input_is_one_line_with_its_exit_code(args, code, message):
    out = selftest(*args)
    assert out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("Error: ") and message in lines[0]


def test_missing_iperf3_names_the_install_command(tmp_path):
    # the fake root has no /usr/bin/iperf3 either: not installed at all
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text("ID=debian\n")
    out = selftest("--peer", "10.0.0.2", "--expect", "1G", path=str(tmp_path), root=str(tmp_path))
    assert out.returncode == errors.IPERF3_MISSING == 16
    assert out.stderr.strip() == "Error: iperf3 is not installed: install it with `apt-get install -y iperf3`"
    served = selftest("--serve", path=str(tmp_path), root=str(tmp_path))
    assert served.returncode == errors.IPERF3_MISSING and "apt-get install -y iperf3" in served.stderr


def test_iperf3_installed_but_not_on_path_says_where_it_is(tmp_path):
    # a systemd unit, cron or sudo's secure_path may leave /usr/bin off PATH; installing again would not help
    binary = tmp_path / "usr/bin/iperf3"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["--peer", "10.0.0.2", "--expect", "1G"], ["--serve"]):
        out = selftest(*args, path=str(empty), root=str(tmp_path))
        assert out.returncode == errors.IPERF3_MISSING, out.stderr
        assert out.stderr.strip() == (f"Error: iperf3 is installed as {binary} but is not on PATH: add "
                                      f"{binary.parent} to PATH (it is '{empty}')")


@pytest.mark.skipif(not os.access("/usr/bin/iperf3", os.X_OK), reason="needs /usr/bin/iperf3")
def test_the_real_usr_bin_iperf3_off_path_is_found(tmp_path):
    out = selftest("--peer", "10.0.0.2", "--expect", "1G", path=str(tmp_path))
    assert out.returncode == errors.IPERF3_MISSING
    assert "iperf3 is installed as /usr/bin/iperf3 but is not on PATH: add /usr/bin to PATH" in out.stderr


@pytest.mark.parametrize("os_release,command", [
    ("ID=fedora\n", "dnf install -y iperf3"),
    ("ID='rocky'\nID_LIKE='rhel centos fedora'\n", "dnf install -y iperf3"),  # single quotes, as the shell reads
    ('ID="opensuse-leap"\nID_LIKE="suse opensuse"\n', "zypper install -y iperf3"),
    ("ID=alpine\n", "apk add iperf3"),
    ("ID=ubuntu\nID_LIKE=debian\n", "apt-get install -y iperf3"),
])
def test_missing_iperf3_names_this_distributions_install_command(tmp_path, os_release, command):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text(os_release)
    out = selftest("--peer", "10.0.0.2", "--expect", "1G", path=str(tmp_path), root=str(tmp_path))
    assert out.returncode == errors.IPERF3_MISSING, out.stderr
    assert out.stderr.strip().endswith(f"install it with `{command}`")


def test_errors_in_json_mode_also_print_a_document(tmp_path):
    out = selftest("--peer", "10.0.0.2", "--expect", "1G", "--json", path=str(tmp_path), root=str(tmp_path))
    assert out.returncode == errors.IPERF3_MISSING
    doc = json.loads(out.stdout)
    assert doc["schema"] == "guestcheck.selftest/1"
    assert doc["error"]["code"] == 16 and doc["error"]["kind"] == "iperf3-missing"


def test_help_lists_every_exit_code():
    out = selftest("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for code in errors.EXIT_CODES:
        assert re.search(rf"\b{code} ", text), code


def test_selftest_is_a_guestcheck_command():
    out = subprocess.run([sys.executable, "-m", "guestcheck", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert re.search(r"^\s+selftest\s", out.stdout, re.M), out.stdout


def test_exit_codes_do_not_collide():
    assert len(errors.EXIT_CODES) == len({kind for kind, _ in errors.EXIT_CODES.values()})
    faults = [c for c in errors.EXIT_CODES if c >= 10]
    assert min(faults) > 3  # never read as one of doctor's Nagios codes


def test_readme_documents_the_exit_codes_and_the_schema():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Self-test"):]
    for code, (kind, _) in errors.EXIT_CODES.items():
        assert re.search(rf"^\| {code} \| `{kind}` \|", section, re.M), (code, kind)
    assert "guestcheck.selftest/1" in section
    for field in ("peer", "expected", "runs", "connect_rtt", "verdict", "causes", "compare", "exit_code", "error"):
        assert f"`{field}`" in section, field


@pytest.mark.parametrize("content", [
    '{"schema": "guestcheck.selftest/1", "runs": [{"direction": "upload", "streams": 1, "throughput_bps": NaN}],'
    ' "verdict": {"label": "near line rate"}, "expected": {"bps": 1e9}}',
    '{"schema": "guestcheck.selftest/1", "runs": [1], "verdict": {"label": "near line rate"}, "expected": {"bps": 1}}',
    '{"schema": "guestcheck.selftest/1", "runs": [{"direction": "upload", "streams": 1, "throughput_bps": 1e9}],'
    ' "verdict": [], "expected": {"bps": 1e9}}',
    "[" * 100000,
])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_damaged_compare_file_fails_before_any_measurement(tmp_path, content, as_json):
    from tests.fuzz.fake_iperf3 import FakeIperf3

    fake = FakeIperf3(tmp_path / "bin")
    before = tmp_path / "before.json"
    before.write_text(content)
    out = selftest("--peer", "127.0.0.1", "--expect", "1G", "--compare", str(before), *(["--json"] if as_json else []),
                   path=fake.env["PATH"])
    assert out.returncode == errors.FILE_ERROR == 19, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {before} is "), out.stderr
    assert fake.calls() == []  # iperf3 never ran: no measurement was lost to the file
    if as_json:
        assert json.loads(out.stdout)["error"]["kind"] == "file"


@pytest.mark.parametrize("args,message", [
    (["--serve", "--time-limit", "0.05"], "must be seconds from 0.1 to 604800 (0: no limit)"),
    (["--serve", "--time-limit", "nan"], "is not a duration"),
    (["--peer", "10.0.0.2", "--port", "1_0"], "must be a whole number from 1 to 65535"),
    (["--peer", "10.0.0.2", "--parallel", "\u0663"], "must be a whole number from 1 to 128"),
])
def test_numeric_options_are_strict(args, message):
    out = selftest(*args)
    assert out.returncode == errors.BAD_INPUT and message in out.stderr and len(out.stderr.splitlines()) == 1


def test_a_usage_error_with_json_still_prints_a_document():
    out = selftest("--peer", "10.0.0.2", "--duration", "nan", "--json")
    assert out.returncode == errors.BAD_INPUT
    doc = json.loads(out.stdout)
    assert doc["error"]["kind"] == "bad-input" and doc["exit_code"] == 15


def test_an_absurdly_long_bad_value_is_echoed_cut_short():
    out = selftest("--peer", "10.0.0.2", "--port", "9" * 5000)
    assert out.returncode == errors.BAD_INPUT
    assert len(out.stderr) < 600 and "..." in out.stderr and len(out.stderr.splitlines()) == 1


HOSTILE_NIC = "n\x1b]0;owned\x07\x9b"  # 12 bytes: a name the kernel accepts (IFNAMSIZ, no '/', ':' or space)


def _hostile_nic_machine(base):
    """A fake machine whose NIC, the route's, has a hostile name: an emulated e1000 (flagged by doctor)."""
    from guestcheck.facts import Feature
    from tests.fakemachine import FakeMachine

    m = FakeMachine(base)
    m.add_nic(HOSTILE_NIC, driver="e1000", pci_id="8086:100e", speed=1000,
              features={"rx-gro": Feature(False, False), "tx-tcp-segmentation": Feature(False, False)})
    m.write_ethtool()
    return m


def _selftest_via(name: str, *args: str, root: str, path: str) -> subprocess.CompletedProcess:
    """selftest as a process, with the kernel's route lookup answering `name` (the one part replaced: no
    interface with such a name exists on the test machine) and a fake iperf3 first on PATH."""
    code = ("import sys\nimport guestcheck.selftest.route as route\n"
            f"route.egress_interface = lambda address: {name!r}\n"
            "from guestcheck.entry import main\nmain(sys.argv[1:])")
    env = {**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": root, "PATH": path}
    return subprocess.run([sys.executable, "-c", code, "selftest", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_exit_17_escapes_the_interface_name_in_its_message(tmp_path):
    from tests.fuzz.fake_iperf3 import FakeIperf3
    from tests.unit.test_output import raw_controls

    fake = FakeIperf3(tmp_path / "bin")
    m = _hostile_nic_machine(tmp_path / "root")
    m.write(f"sys/class/net/{HOSTILE_NIC}/speed", "-1\n")
    out = _selftest_via(HOSTILE_NIC, "--peer", "127.0.0.1", root=str(m.base), path=fake.env["PATH"])
    assert out.returncode == errors.EXPECT_UNKNOWN == 17, out.stderr
    assert raw_controls(out.stderr) == [] and raw_controls(out.stdout) == [], out.stderr
    assert out.stderr.splitlines() == [
        "Error: interface n\\x1b]0;owned\\x07\\x9b is an emulated NIC: it reports no line rate "
        "(only physical NICs and SR-IOV VFs report one): pass the rate you expect, e.g. --expect 1G"], out.stderr
    assert not fake.ran("-c")  # stopped before any measurement


def test_likely_causes_escape_the_interface_name_and_doctors_text(tmp_path):
    from tests.fuzz.fake_iperf3 import FakeIperf3, Reply
    from tests.unit.test_output import raw_controls
    from tests.unit.test_selftest_iperf3 import UPLOAD_2_STREAMS

    fake = FakeIperf3(tmp_path / "bin")
    fake.script_client([Reply(json.dumps(UPLOAD_2_STREAMS).encode())])  # ~95 Mbit/s: far below 1G
    m = _hostile_nic_machine(tmp_path / "root")
    out = _selftest_via(HOSTILE_NIC, "--peer", "127.0.0.1", "--expect", "1G", "--direction", "upload",
                        "--parallel", "1", "--duration", "1", root=str(m.base), path=fake.env["PATH"])
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert raw_controls(out.stdout) == [] and raw_controls(out.stderr) == [], out.stdout
    assert "likely causes (from guestcheck doctor):" in out.stdout
    assert "[n\\x1b]0;owned\\x07\\x9b]" in out.stdout, out.stdout
