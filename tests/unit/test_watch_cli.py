"""watch/cli.py: options are checked before anything is read; a piped run prints one line per interval."""

from __future__ import annotations

import subprocess
import sys

REPO_ARGS = [sys.executable, "-m", "guestcheck", "watch"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*REPO_ARGS, *args], capture_output=True, text=True, timeout=30)


def test_bad_interval_and_count_are_usage_errors():
    for args in (["--interval", "0"], ["--interval", "nan"], ["--count", "-1"], ["--count", "1_0"]):
        done = _run(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) >= 1


def test_piped_count_lines_without_events():
    done = _run("--count", "2", "--interval", "0.1", "--events", "none")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2 and "steal" in done.stdout


def test_the_events_kept_are_bounded(tmp_path, monkeypatch):
    """A link that flaps for days must not grow watch's memory: the last MAX_EVENTS_KEPT are kept, in order."""
    from guestcheck.roots import Roots
    from guestcheck.watch.cli import MAX_EVENTS_KEPT, Watch
    from guestcheck.watch.events import LinkEvent

    shown = []
    monkeypatch.setattr(Watch, "write", staticmethod(shown.append))
    view = Watch(Roots.under(str(tmp_path)), [], 1.0, tty=False, colour=False)
    for i in range(10_000):
        view.show_events([LinkEvent(float(i), "link down" if i % 2 else "link up", "eth0")])
    assert len(view.events) == MAX_EVENTS_KEPT
    assert [e.when for e in view.events] == [float(i) for i in range(10_000 - MAX_EVENTS_KEPT, 10_000)]
    assert len(shown) == 10_000  # piped, every event was still printed as it came
