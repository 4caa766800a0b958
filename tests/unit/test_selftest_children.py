"""A child started with die_with_parent() is killed by the kernel when its parent dies, SIGKILL included:
the real mechanism, with real processes (no network)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from guestcheck.selftest.children import die_with_parent

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PARENT = textwrap.dedent("""
    import subprocess, sys, time
    from guestcheck.selftest.children import die_with_parent
    tied = "--tied" in sys.argv
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True,
                             preexec_fn=die_with_parent() if tied else None)
    print(child.pid, flush=True)
    time.sleep(60)
""")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def orphan_survives(tied: bool) -> bool:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *(["--tied"] if tied else [])], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": REPO})
    child = 0
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 2
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        return alive(child)
    finally:
        if child and alive(child):
            os.kill(child, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_tied_child_dies_when_its_parent_is_killed():
    assert not orphan_survives(tied=True)


def test_an_untied_child_would_survive_its_parent():
    """The control: without the death signal, start_new_session leaves an orphan running (the bug)."""
    assert orphan_survives(tied=False)


def test_a_child_whose_parent_is_already_gone_exits_instead_of_running():
    """The race: the parent died between fork and prctl, so the child was reparented before asking."""
    not_our_parent = 1 if os.getpid() != 1 else 2
    out = subprocess.run([sys.executable, "-c", "print('ran')"], preexec_fn=die_with_parent(not_our_parent),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 1 and out.stdout == ""
