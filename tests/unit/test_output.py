"""The printing gate (guestcheck/output.py, text.escape_output): whatever guestcheck prints, by whatever road,
reaches the terminal with its control characters escaped; only the renderers' own colour and redraw codes pass,
and only to a terminal."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import click
import pytest

from guestcheck.output import EscapingStream, escape_standard_streams
from guestcheck.text import TERMINAL_CODES, escape_output
from tests.fuzz.harness import REPO

# what must never reach stdout or stderr raw: C0 controls but tab and newline, DEL, and the C1 controls
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
HOSTILE = "n\x1b]0;owned\x07\x9b2J\x9d0;t\x07\x1b[8m\x00\r\x7f"


def raw_controls(text: str) -> list[str]:
    """The control characters in `text` that a terminal would obey (empty when the text is safe to print)."""
    return RAW_CONTROL.findall(text)


def test_escape_output_escapes_each_line_and_keeps_newlines_and_tabs():
    text = f"a {HOSTILE}\n\tb\nplain line\n"
    out = escape_output(text)
    assert raw_controls(out) == [] and out.count("\n") == 3 and "\tb" in out
    assert out.splitlines()[0] == "a n\\x1b]0;owned\\x07\\x9b2J\\x9d0;t\\x07\\x1b[8m\\x00\\r\\x7f"
    assert out.splitlines()[2] == "plain line"


def test_escape_output_leaves_safe_text_and_json_as_they_are():
    for text in ("guestcheck doctor: OK\n", '{\n  "name": "caf\u00e9 \u00a0\ue000 \U0001f600 \\u001b"\n}\n', ""):
        assert escape_output(text) is text


def test_the_colour_codes_pass_only_to_a_terminal_and_nothing_else_does():
    coloured = "\033[1;31mCRITICAL\033[0m x \033[H\033[J\r\033[K"
    assert escape_output(coloured, terminal=True) == coloured
    assert raw_controls(escape_output(coloured)) == []
    hostile = "\033[1;31mok\033[0m \033]0;title\007 \033[2J \033[8m \x9b31m"
    out = escape_output(hostile, terminal=True)
    assert out == "\033[1;31mok\033[0m \\x1b]0;title\\x07 \\x1b[2J \\x1b[8m \\x9b31m"


def test_every_code_a_renderer_writes_is_one_the_gate_lets_through():
    """A renderer that starts using a new code must add it to TERMINAL_CODES, or its colour shows as text."""
    from guestcheck.render import human
    from guestcheck.selftest import progress
    from guestcheck.selftest import render as selftest_render
    from guestcheck.watch import view

    used = {*human._COLOURS.values(), *human._STATUS_COLOURS.values(), human._RESET,
            *selftest_render._COLOURS.values(), selftest_render._RESET, view.CLEAR, view._RED, view._RESET,
            progress.ERASE}
    assert used <= set(TERMINAL_CODES)


def test_the_stream_escapes_click_echo_print_and_click_errors():
    inner = io.StringIO()
    stream = EscapingStream(inner, terminal_codes=False)
    click.echo(f"name {HOSTILE}", file=stream)
    print(HOSTILE, file=stream)
    click.ClickException(f"refusing: {HOSTILE}").show(file=stream)
    assert raw_controls(inner.getvalue()) == [] and inner.getvalue().count("\n") == 3


def test_the_stream_refuses_bytes_and_has_no_buffer_to_write_past_it():
    stream = EscapingStream(io.StringIO(), terminal_codes=False)
    with pytest.raises(TypeError):
        stream.write(b"\x1b")  # type: ignore[arg-type]
    assert not hasattr(stream, "buffer")
    assert stream.isatty() is False and stream.encoding == io.StringIO().encoding


def test_installing_twice_wraps_once(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    escape_standard_streams()
    first = sys.stdout
    escape_standard_streams()
    assert sys.stdout is first and isinstance(first, EscapingStream) and isinstance(sys.stderr, EscapingStream)
    assert first.inner is not sys.stdout and not isinstance(first.inner, EscapingStream)


def test_the_executable_puts_the_gate_in_place_before_anything_prints():
    """A print from inside a command (to either stream) and a click error both reach the pipe escaped."""
    code = ("import sys\nimport guestcheck.checks\nfrom guestcheck.entry import main\n"
            "def catalog():\n"
            f"    print({HOSTILE!r}); print({HOSTILE!r}, file=sys.stderr); return {{}}\n"
            "guestcheck.checks.catalog = catalog\n"
            f"main(['explain', {HOSTILE!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), timeout=60)
    assert out.returncode == 3, out.stderr
    assert raw_controls(out.stdout) == [] and raw_controls(out.stderr) == [], (out.stdout, out.stderr)
    assert set(out.stdout.splitlines()) == {"n\\x1b]0;owned\\x07\\x9b2J\\x9d0;t\\x07\\x1b[8m\\x00\\r\\x7f"}
    assert "unknown finding id 'n\\x1b]0;owned" in out.stderr


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """guestcheck with its standard output on a pseudo-terminal (as a user at a console sees it)."""
    import os
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "guestcheck", *args], stdout=slave, stderr=subprocess.PIPE,
                              env={**{k: v for k, v in os.environ.items() if k != "NO_COLOR"},
                                   "PYTHONPATH": str(REPO), **env}, timeout=60, cwd=str(REPO))
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the writer closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    assert raw_controls(proc.stderr.decode()) == []
    return b"".join(chunks).decode()


@pytest.mark.parametrize("args", [["doctor", "--sample", "0"], ["watch", "--count", "1", "--interval", "0.1",
                                                                   "--events", "none"]])
def test_on_a_terminal_only_the_renderers_codes_pass(tmp_path, args):
    """Colour goes around escaped values: the hostile name shows as text, the report is still coloured."""
    from tests.fakemachine import FakeMachine

    m = FakeMachine(tmp_path)
    m.add_nic(HOSTILE.replace("\x00", "").replace("\r", ""), driver="e1000", pci_id="8086:100e",
              statistics={"rx_dropped": 5})
    m.write("run/systemd/container", f"c{HOSTILE}\n".replace("\x00", ""))
    m.write_ethtool()
    text = _run_on_a_terminal(args, {"GUESTCHECK_ROOT": str(tmp_path)}).replace("\r\n", "\n")  # the tty's ONLCR
    remains = text
    for code in TERMINAL_CODES:
        remains = remains.replace(code, "")
    assert raw_controls(remains) == [], remains
    assert "n\\x1b]0;owned\\x07\\x9b2J" in text
    assert any(code in text for code in TERMINAL_CODES)  # still coloured (doctor), still redrawn (watch)
