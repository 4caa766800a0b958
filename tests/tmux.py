"""A real terminal for tests: a command in a detached tmux pane, read back with capture-pane.

Each Pane runs on its own tmux server (-L), so tests never see or touch anyone else's sessions; the pane
stays after the command exits (remain-on-exit) so its exit status and last screen can be read.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
import uuid
from typing import Callable, Iterator, Optional, Sequence

import pytest

requires_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")


class Pane:
    def __init__(self, socket: str) -> None:
        self.socket = socket

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


# The pane runs the command under a small parent, as a terminal's shell would: the command starts with the
# default SIGINT (a test run started in the background has SIGINT ignored, and that would be inherited through
# tmux, so Ctrl-C would do nothing), and its exit status is the parent's, which tmux reports reliably (tmux 3.3
# sometimes marks a pane dead from its closed terminal before it has the status: no `pane_dead_status`).
_AS_A_SHELL = (
    "import signal, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle\n"
    "code = child.wait()\n"
    "sys.exit(code if code >= 0 else 128 - code)\n"
)


@contextlib.contextmanager
def pane(argv: Sequence[str], *, width: int = 200, height: int = 50) -> Iterator[Pane]:
    """`argv` run directly (no shell) on a fresh terminal of width x height, with the default SIGINT."""
    p = Pane(f"gc-test-{uuid.uuid4().hex[:8]}")
    subprocess.run(["tmux", "-L", p.socket, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(width),
                    "-y", str(height), "sleep 60"], check=True, timeout=10)
    try:
        p.tmux("set-option", "-t", "t", "remain-on-exit", "on")
        p.tmux("respawn-pane", "-k", "-t", "t", sys.executable, "-c", _AS_A_SHELL, *argv)
        yield p
    finally:
        subprocess.run(["tmux", "-L", p.socket, "kill-server"], check=False, capture_output=True, timeout=10)
