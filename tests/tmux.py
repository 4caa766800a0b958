"""A real terminal for tests: a command in a detached tmux pane, read back with capture-pane.

Each Pane runs on its own tmux server (-L), so tests never see or touch anyone else's sessions; the pane
stays after the command exits (remain-on-exit) so its exit status and last screen can be read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Callable, Iterator, Optional, Sequence

import pytest

requires_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")


class Pane:
    def __init__(self, socket: str, status_file: str = "") -> None:
        self.socket = socket
        self.status_file = status_file

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def text(self) -> str:
        """What the screen shows now (joined lines, no colour codes)."""
        return self.tmux("capture-pane", "-p", "-J", "-t", "t")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def status(self) -> Optional[int]:
        """The command's exit status once it has exited, else None."""
        with contextlib.suppress(OSError, ValueError), open(self.status_file) as f:
            return int(f.read())
        fields = self.tmux("display-message", "-p", "-t", "t", "#{pane_dead} #{pane_dead_status}").split()
        return int(fields[1]) if fields[:1] == ["1"] and len(fields) == 2 else None

    def wait_for(self, ready: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if ready(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{text}")
            time.sleep(0.1)

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (status := self.status()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout} s; the screen shows:\n{self.text()}")
            time.sleep(0.1)
        return status


# The pane runs the command under a small parent that does what a terminal's shell does for a foreground job:
# the command gets its own process group, which is given the terminal (so Ctrl-C reaches it, and a signal the
# command sends to its own group cannot reach the parent), and starts with the default SIGINT (a test run started
# in the background has SIGINT ignored, which would be inherited through tmux). The parent writes the exit status
# to a file, which wait_exit reads: tmux 3.3 loses `pane_dead_status` for a pane that died by a signal.
_AS_A_SHELL = (
    "import os, signal, subprocess, sys\n"
    "def job():\n"
    "    os.setpgid(0, 0)\n"
    "    signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "    signal.signal(signal.SIGTTOU, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGTTOU, signal.SIG_IGN)\n"
    "child = subprocess.Popen(sys.argv[2:], preexec_fn=job)\n"
    "try:\n"
    "    os.tcsetpgrp(0, child.pid)\n"
    "except OSError:\n"
    "    pass\n"
    "code = child.wait()\n"
    "code = code if code >= 0 else 128 - code\n"
    "with open(sys.argv[1] + '.tmp', 'w') as f:\n"
    "    f.write(str(code))\n"
    "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "sys.exit(code)\n"
)


@contextlib.contextmanager
def pane(argv: Sequence[str], *, width: int = 200, height: int = 50) -> Iterator[Pane]:
    """`argv` run directly (no shell) on a fresh terminal of width x height, with the default SIGINT."""
    p = Pane(f"gc-test-{uuid.uuid4().hex[:8]}", os.path.join(tempfile.gettempdir(), f"gc-pane-{uuid.uuid4().hex}"))
    subprocess.run(["tmux", "-L", p.socket, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(width),
                    "-y", str(height), "sleep 60"], check=True, timeout=10)
    try:
        p.tmux("set-option", "-t", "t", "remain-on-exit", "on")
        p.tmux("respawn-pane", "-k", "-t", "t", sys.executable, "-c", _AS_A_SHELL, p.status_file, *argv)
        yield p
    finally:
        subprocess.run(["tmux", "-L", p.socket, "kill-server"], check=False, capture_output=True, timeout=10)
        with contextlib.suppress(OSError):
            os.unlink(p.status_file)
