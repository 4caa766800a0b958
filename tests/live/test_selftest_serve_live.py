"""`selftest --serve` never leaves iperf3 running (issue 9): with the real iperf3 in a namespace of our own,
SIGHUP (the SSH session closed) and SIGKILL of guestcheck leave no listener on the port within 2 s and no
iperf3 process. And the first line says where it listens and for how long."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.live.test_selftest_faults import no_iperf3_left
from tests.live.test_selftest_live import REPO, finish, read_line
from tests.netns import Netns, netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")]

PORT = 5201
GONE_WITHIN = 2.0
PREFIX = "guestcheck selftest --serve: iperf3 server listening on "


def serve(ns: Netns, *args: str) -> tuple[subprocess.Popen, str]:
    """`guestcheck selftest --serve ARGS` in `ns` and its first line, once it says it listens."""
    proc = ns.popen([sys.executable, "-m", "guestcheck", "selftest", "--serve", *args], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO})
    line = read_line(proc, 15).rstrip("\n")
    assert line.startswith(PREFIX), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line


def listeners(ns: Netns, port: int) -> str:
    return ns.run(["ss", "-Hltn", f"sport = :{port}"]).stdout.strip()


def assert_nothing_left_within(ns: Netns, seconds: float, port: int = PORT) -> None:
    """No socket listens on `port` and no iperf3 runs in `ns`, within `seconds`."""
    start = time.monotonic()
    while listeners(ns, port) and time.monotonic() - start < seconds:
        time.sleep(0.05)
    assert listeners(ns, port) == "", f"still listening after {seconds}s: {listeners(ns, port)}"
    no_iperf3_left(ns)


def test_hangup_stops_serve_and_its_iperf3():
    with netns("gcsv") as b:
        server, _ = serve(b)
        assert Path(f"/proc/{server.pid}/comm").read_text().strip().startswith("python")  # the signal reaches us
        assert listeners(b, PORT) != ""
        server.send_signal(signal.SIGHUP)
        code, out, err = finish(server, 5)
        assert_nothing_left_within(b, GONE_WITHIN)
    assert code == 0 and err == "" and out.strip().endswith("stopped (SIGHUP)"), (code, out, err)


def test_sigkill_of_serve_takes_iperf3_with_it():
    with netns("gcsv") as b:
        server, _ = serve(b, "--time-limit", "0")
        assert listeners(b, PORT) != ""
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=5)
        assert_nothing_left_within(b, GONE_WITHIN)
    assert server.returncode == -signal.SIGKILL


def test_sigkill_during_start_up_leaves_nothing_either():
    """Killed before, while or just after iperf3 starts (the death signal covers the window before our
    handlers exist; tests/unit/test_selftest_children.py covers a parent gone before prctl)."""
    with netns("gcsv") as b:
        for delay in (0.1, 0.3, 0.6):
            server = b.popen([sys.executable, "-m", "guestcheck", "selftest", "--serve"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": REPO})
            time.sleep(delay)
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=5)
            assert_nothing_left_within(b, GONE_WITHIN)


def test_the_first_line_names_the_address_and_the_time_limit():
    lines = []
    with netns("gcsv") as b:
        for args in ([], ["--time-limit", "0", "--port", "5202"],
                     ["--bind", "127.0.0.1", "--time-limit", "90", "--once", "--port", "5203"]):
            server, line = serve(b, *args)
            lines.append(line)
            server.send_signal(signal.SIGTERM)
            code, out, _ = finish(server, 5)
            assert code == 0 and out.strip().endswith("stopped (SIGTERM)")
        no_iperf3_left(b)
    # issue 24 named the latency echo's port (iperf3's port + 1 unless --echo-port) before the time limit
    assert lines == [PREFIX + "all addresses (--bind ADDR narrows it) port 5201, latency echo on udp port 5202, "
                              "time limit 600s",
                     PREFIX + "all addresses (--bind ADDR narrows it) port 5202, latency echo on udp port 5203, "
                              "no time limit",
                     PREFIX + "127.0.0.1 port 5203, one session, latency echo on udp port 5204, time limit 90s"]
