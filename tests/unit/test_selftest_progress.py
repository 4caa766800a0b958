"""selftest/progress.py and iperf3.run_process's tick: elapsed time and the rate of iperf3's socket I/O."""

from __future__ import annotations

import sys

from guestcheck.selftest.iperf3 import DOWNLOAD, UPLOAD, RunSpec, run_process
from guestcheck.selftest.progress import ERASE, Progress, io_bytes


def _spec(direction: str = UPLOAD, streams: int = 1) -> RunSpec:
    return RunSpec("10.0.0.2", 5201, direction, streams, 5, 10.0)


def _io(tmp_path, pid: int, rchar: int, wchar: int) -> None:
    (tmp_path / str(pid)).mkdir(exist_ok=True)
    (tmp_path / str(pid) / "io").write_text(f"rchar: {rchar}\nwchar: {wchar}\nsyscr: 1\n")


def test_each_tick_shows_elapsed_time_and_the_rate_since_the_last(tmp_path):
    shown, now = [], [100.0]
    progress = Progress(shown.append, clock=lambda: now[0], proc=str(tmp_path))
    tick = progress.start(1, 4, _spec())
    assert shown[-1] == f"{ERASE}run 1/4: upload, 1 stream: 0 s of 5 s"
    _io(tmp_path, 42, 0, 1_000_000)
    now[0] = 101.0
    tick(42)
    assert shown[-1] == f"{ERASE}run 1/4: upload, 1 stream: 1 s of 5 s"  # no rate from one reading
    _io(tmp_path, 42, 0, 13_500_000)
    now[0] = 102.0
    tick(42)
    assert shown[-1] == f"{ERASE}run 1/4: upload, 1 stream: 2 s of 5 s, 100 Mbit/s"
    progress.finish()
    assert shown[-1] == ERASE


def test_download_counts_what_iperf3_read(tmp_path):
    shown, now = [], [0.0]
    tick = Progress(shown.append, clock=lambda: now[0], proc=str(tmp_path)).start(2, 2, _spec(DOWNLOAD, 4))
    _io(tmp_path, 7, 0, 99)
    tick(7)
    _io(tmp_path, 7, 250_000_000, 99)
    now[0] = 2.0
    tick(7)
    assert shown[-1].endswith("run 2/2: download, 4 streams: 2 s of 5 s, 1.00 Gbit/s")


def test_an_unreadable_io_file_shows_time_only(tmp_path):
    shown, now = [], [0.0]
    tick = Progress(shown.append, clock=lambda: now[0], proc=str(tmp_path)).start(1, 1, _spec())
    now[0] = 3.0
    tick(12345)
    tick(12345)
    assert shown[-1].endswith("3 s of 5 s")
    assert io_bytes(12345, "wchar", str(tmp_path)) is None


def test_run_process_ticks_while_the_child_runs_and_keeps_all_output():
    pids = []
    code = "import sys, time; print('x' * 70000); time.sleep(2.3); print('end')"
    done = run_process([sys.executable, "-c", code], 20, pids.append)
    assert not done.timed_out and done.stdout == "x" * 70000 + "\nend\n"
    assert len(pids) >= 2 and len(set(pids)) == 1  # one tick a second while it runs: at least two in 2.3 s


def test_run_process_without_tick_still_kills_at_the_hard_limit():
    done = run_process([sys.executable, "-c", "import time; time.sleep(30)"], 0.5)
    assert done.timed_out and done.wall_seconds < 5
