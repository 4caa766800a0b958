"""The line that says what `--sample N` waits for: on a terminal only, and erased before the report."""

from __future__ import annotations

import os
import sys

import pytest

from guestcheck.waiting import ERASE, waiting_line
from tests.tmux import pane, requires_tmux

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Tty:
    """A stderr that says it is a terminal and keeps what was written."""

    def __init__(self, tty: bool = True) -> None:
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def test_the_waiting_line_says_what_it_waits_for_and_is_erased():
    err = Tty()
    with waiting_line(5, err):
        pass
    assert err.text.startswith(f"{ERASE}sampling counters for 5 s (CPU steal, softirqs, drops): 0 s...")
    assert err.text.endswith(ERASE)


@pytest.mark.parametrize("seconds,tty", [(5, False), (0, True)])
def test_no_waiting_line_off_a_terminal_or_without_a_sample(seconds, tty):
    err = Tty(tty)
    with waiting_line(seconds, err):
        pass
    assert err.text == ""


@requires_tmux
def test_doctor_sample_on_a_terminal_shows_the_waiting_line_then_erases_it(tmp_path):
    from tests.fakemachine import FakeMachine

    m = FakeMachine(tmp_path / "root")
    m.add_nic("ens3", driver="e1000", pci_id="8086:100e", speed=1000, duplex="full")
    argv = ["env", f"PYTHONPATH={REPO}", f"GUESTCHECK_ROOT={tmp_path / 'root'}", sys.executable, "-m", "guestcheck",
            "doctor", "--sample", "3"]
    with pane(argv) as p:
        p.wait_for(lambda s: "sampling counters for 3 s (CPU steal, softirqs, drops):" in s, 20, "the waiting line")
        p.wait_exit(30)
        screen = p.tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-100")  # with what scrolled off the top
    assert "sampling counters" not in screen, screen
    assert "guestcheck doctor: " in screen and "next: guestcheck explain NIC-EMULATED" in screen, screen
