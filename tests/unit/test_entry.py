"""The click-free fast path for plain doctor runs: a strict subset of the CLI, with the same output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from guestcheck.entry import fast_doctor_options
from guestcheck.exits import guarded
from tests.fakemachine import REPO, FakeMachine


@pytest.mark.parametrize("args,expected", [
    (["doctor"], {"fmt": "human", "sample_seconds": 1.0, "verbose": False}),
    (["doctor", "--json"], {"fmt": "json", "sample_seconds": 1.0, "verbose": False}),
    (["doctor", "--json", "--sample", "0"], {"fmt": "json", "sample_seconds": 0.0, "verbose": False}),
    (["doctor", "--sample=2.5", "-v"], {"fmt": "human", "sample_seconds": 2.5, "verbose": True}),
    (["doctor", "--format", "prometheus"], {"fmt": "prometheus", "sample_seconds": 1.0, "verbose": False}),
    (["doctor", "--format=json", "--verbose"], {"fmt": "json", "sample_seconds": 1.0, "verbose": True}),
])
def test_plain_runs_take_the_fast_path(args, expected):
    assert fast_doctor_options(args) == expected


@pytest.mark.parametrize("args", [
    [], ["tune", "list"], ["doctor", "--help"], ["doctor", "-h"], ["doctor", "--sample"], ["doctor", "--sample", "x"],
    ["doctor", "--sample", "nan"], ["doctor", "--sample", "-1"], ["doctor", "--sample", "1e9"],
    ["doctor", "--sample", "inf"], ["doctor", "--sample=1e400"], ["doctor", "--sample", str(10**400)],
    ["doctor", "--sample", "1_0"], ["doctor", "--sample", "0x10"], ["doctor", "--sample", "-0"],
    ["doctor", "--format", "xml"], ["doctor", "--only", "NIC-*"], ["doctor", "--facts", "f.json"],
    ["doctor", "-o", "out"], ["doctor", "extra"], ["doctor", "--json", "--textfile-dir", "/tmp"], ["--version"],
])
def test_everything_else_goes_to_click(args):
    assert fast_doctor_options(args) is None


def _run(code: str, root: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": root}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("args", [
    ["doctor", "--json", "--sample", "0"],
    ["doctor", "--sample", "0", "-v"],
    ["doctor", "--format", "prometheus", "--sample", "0"],
])
def test_fast_path_prints_what_click_prints(tmp_path, args):
    m = FakeMachine(tmp_path)
    m.add_nic("ens3", driver="e1000", pci_id="8086:100e", pci_subsystem_id="1af4:1100")
    fast = _run("import sys; from guestcheck.entry import main\n"
                "try:\n    main(sys.argv[1:])\nfinally:\n    print('click' in sys.modules, file=sys.stderr)\n"
                .replace("sys.argv[1:]", repr(args)), str(tmp_path))
    slow = _run(f"from guestcheck.cli import main; main({args!r})", str(tmp_path))
    assert fast.stderr.strip() == "False"  # the fast path never imported click
    assert fast.returncode == slow.returncode == 2

    def comparable(text: str) -> str:
        """The output without the collection time, which may tick over between the two runs."""
        if args[1] == "--json":
            doc = json.loads(text)
            doc["facts"]["collected_at"] = ""
            return json.dumps(doc)
        return "\n".join(ln for ln in text.splitlines() if not ln.startswith("guestcheck_last_run_timestamp"))

    assert comparable(fast.stdout) == comparable(slow.stdout)


def test_an_internal_error_is_one_line_with_its_text_escaped(capsys, monkeypatch):
    """The last line of defence prints the exception's text, which may carry a name from outside."""
    monkeypatch.delenv("GUESTCHECK_DEBUG", raising=False)

    def boom() -> int:
        raise RuntimeError("bad name 'eth0\x1b[2J\nnext'")

    assert guarded(boom) == 3
    err = capsys.readouterr().err
    assert err == ("guestcheck: internal error: RuntimeError: bad name 'eth0\\x1b[2J\\nnext' "
                   "(GUESTCHECK_DEBUG=1 shows more)\n")


# --- a closed pipe is never an error (README "Exit codes of every command") ----------------------------------

def _to_a_closed_pipe(args: list[str], root: str) -> subprocess.CompletedProcess:
    """Run guestcheck with stdout a pipe whose reader is already gone: its first write gets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "guestcheck", *args], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60, cwd="/",
                              env={**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": root})
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args,code", [
    (["doctor", "--sample", "0"], 2),  # the fast path: the verdict (critical: an emulated e1000) is kept
    (["doctor", "--sample", "0", "--only", "NIC-*"], 2),  # click's path: the same
    (["doctor", "--sample", "0", "--json"], 2),
    (["facts", "--sample", "0"], 0),
    (["watch", "--events", "none", "--interval", "0.1"], 0),  # without --count it would run for ever
    (["tune", "list"], 0),
    (["explain", "--list"], 0),
    (["--help"], 0),
])
def test_a_closed_pipe_keeps_the_verdict_or_exits_0(tmp_path, args, code):
    m = FakeMachine(tmp_path)
    m.add_nic("ens3", driver="e1000", pci_id="8086:100e", pci_subsystem_id="1af4:1100")
    out = _to_a_closed_pipe(args, str(tmp_path))
    assert out.returncode == code
    assert out.stderr == ""  # no "Exception ignored ... BrokenPipeError" at exit, no error line


@pytest.mark.parametrize("args", [["watch", "--events", "none", "--interval", "0.1"], ["tune", "list"]])
def test_head_1_takes_the_first_line_and_guestcheck_exits_0(tmp_path, args):
    # the issue's own case: `guestcheck watch | head -1`, with a real head that exits after one line
    m = FakeMachine(tmp_path)
    m.add_nic("ens3", driver="e1000", pci_id="8086:100e", pci_subsystem_id="1af4:1100")
    env = {**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(tmp_path)}
    gc = subprocess.Popen([sys.executable, "-m", "guestcheck", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, cwd="/")
    head = subprocess.run(["head", "-1"], stdin=gc.stdout, capture_output=True, text=True, timeout=60)
    gc.stdout.close()
    try:
        code = gc.wait(timeout=60)
    finally:
        if gc.poll() is None:
            gc.kill()
    assert len(head.stdout.splitlines()) == 1
    assert code == 0 and gc.stderr.read() == b""


def test_an_epipe_that_is_not_stdout_is_no_closed_pipe(capsys, monkeypatch):
    """Only a reader gone from stdout is a closed pipe: a broken pipe to a child is an error of its own."""
    monkeypatch.delenv("GUESTCHECK_DEBUG", raising=False)

    def child_went_away() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    assert guarded(child_went_away) == 3
    assert "internal error: BrokenPipeError" in capsys.readouterr().err
