"""Faults against the real iperf3 between namespaces: each ends within --timeout with its documented
exit code and a one-line error, never a hang, never a traceback, and leaves no iperf3 running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from guestcheck.selftest import errors
from tests.live.test_selftest_live import SERVER, iperf3_server, shaped_path
from tests.netns import Netns, netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 3.0
SLACK = 1.5  # interpreter start-up, process teardown, a busy 2-core machine


def selftest_in(ns: Netns, *args: str) -> subprocess.Popen:
    """selftest as a shell starts it: with the default SIGINT (a test run started in the background has SIGINT
    ignored, which the child would inherit, and then a SIGINT would do nothing)."""
    env = {**os.environ, "PYTHONPATH": REPO}
    return ns.popen([sys.executable, "-m", "guestcheck", "selftest", *args], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, env=env,
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finished(proc: subprocess.Popen, within: float) -> tuple[int, str, str]:
    """Exit code, stdout, stderr; fails (and kills it) if it takes longer than `within`."""
    try:
        out, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"selftest still running after {within}s: it hung") from None
    return proc.returncode, out, err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    return lines[0]


def no_iperf3_left(ns: Netns) -> None:
    pids = ns.run(["ip", "netns", "pids", ns.name]).stdout.split()
    names = [Path(f"/proc/{p}/comm").read_text().strip() for p in pids if os.path.exists(f"/proc/{p}/comm")]
    assert "iperf3" not in names, names


def wait_for_iperf3_child(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Until the selftest has an iperf3 running (bounded): a fixed sleep would race a slow start-up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        if any(Path(f"/proc/{c}/comm").read_text().strip() == "iperf3" for c in children
               if os.path.exists(f"/proc/{c}/comm")):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no iperf3 started by the selftest within {timeout}s")


def at(delay: float, action) -> threading.Timer:
    timer = threading.Timer(delay, action)
    timer.start()
    return timer


def test_server_killed_mid_test():
    with shaped_path("100mbit") as (a, b), iperf3_server(b) as server:
        client = selftest_in(a, "--peer", SERVER, "--expect", "100M", "--duration", "8", "--timeout", str(TIMEOUT))
        killed = []
        timer = at(2.5, lambda: (server.send_signal(signal.SIGKILL), killed.append(time.monotonic())))
        code, _, err = finished(client, 20)
        timer.cancel()
        ended = time.monotonic()
        no_iperf3_left(a)
    assert code == errors.PEER_DIED == 13
    assert killed and ended - killed[0] < TIMEOUT + SLACK
    line = one_line_error(err)
    assert line.startswith("Error: 10.199.0.2:5201 went away during the test (iperf3: ")
    # which socket notices first is a race: the control socket, or a data stream's write
    assert "control socket has closed unexpectedly" in line or "reset by peer" in line, line


@pytest.mark.parametrize("direction,because", [("upload", "unable to write to stream socket"),
                                               ("download", "idle timeout for receiving data")])
def test_peer_vanishing_silently_mid_test(direction, because):
    """No RST, no FIN: the peer's link goes down. iperf3's --snd-timeout / --rcv-timeout notice."""
    with shaped_path("100mbit") as (a, b), iperf3_server(b):
        client = selftest_in(a, "--peer", SERVER, "--expect", "100M", "--duration", "8", "--timeout", str(TIMEOUT),
                             "--direction", direction, "--parallel", "1")
        gone = []
        timer = at(2.5, lambda: (b.ip("link", "set", "gc1", "down"), gone.append(time.monotonic())))
        code, _, err = finished(client, 20)
        timer.cancel()
        ended = time.monotonic()
    assert code == errors.PEER_DIED
    assert gone and ended - gone[0] < TIMEOUT + SLACK
    assert because in one_line_error(err)


def test_busy_server():
    with shaped_path("100mbit") as (a, b), iperf3_server(b):
        other = a.popen(["iperf3", "-c", SERVER, "-t", "20"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            start = time.monotonic()
            code, _, err = finished(selftest_in(a, "--peer", SERVER, "--expect", "100M", "--timeout",
                                                str(TIMEOUT)), TIMEOUT + SLACK)
            elapsed = time.monotonic() - start
        finally:
            other.kill()
            other.wait()
    assert code == errors.BUSY == 12
    assert elapsed < TIMEOUT + SLACK
    assert one_line_error(err).startswith("Error: 10.199.0.2:5201: the server is busy running a test")


def test_closed_port():
    with shaped_path("100mbit") as (a, b), iperf3_server(b):
        start = time.monotonic()
        code, _, err = finished(selftest_in(a, "--peer", f"{SERVER}:5999", "--expect", "100M",
                                            "--timeout", str(TIMEOUT)), TIMEOUT + SLACK)
    assert code == errors.REFUSED == 11
    assert time.monotonic() - start < TIMEOUT + SLACK
    assert one_line_error(err).startswith("Error: 10.199.0.2:5999 refused the connection: nothing listens")


def test_unresolvable_name():
    """In a namespace with only loopback the resolver cannot be reached, so no query leaves the machine."""
    with netns("gcst") as a:
        start = time.monotonic()
        code, _, err = finished(selftest_in(a, "--peer", "nosuch.invalid", "--expect", "1G",
                                            "--timeout", str(TIMEOUT)), TIMEOUT + SLACK)
    assert code == errors.NAME == 14
    assert time.monotonic() - start < TIMEOUT + SLACK
    assert one_line_error(err).startswith("Error: cannot resolve 'nosuch.invalid': ")


def test_unreachable_peer():
    """An address on the veth's subnet that no one holds: ARP goes unanswered until --timeout."""
    with shaped_path("100mbit") as (a, _b):
        start = time.monotonic()
        code, _, err = finished(selftest_in(a, "--peer", "10.199.0.77", "--expect", "100M",
                                            "--timeout", str(TIMEOUT)), TIMEOUT + SLACK)
        elapsed = time.monotonic() - start
    assert code == errors.UNREACHABLE == 10
    assert elapsed < TIMEOUT + SLACK
    assert one_line_error(err).startswith("Error: 10.199.0.77:5201 is unreachable (iperf3: unable to connect")


def test_interrupted_selftest_leaves_no_iperf3_running():
    with shaped_path("100mbit") as (a, b), iperf3_server(b):
        client = selftest_in(a, "--peer", SERVER, "--expect", "100M", "--duration", "10")
        wait_for_iperf3_child(client)  # interrupted mid-run, however slowly it started
        time.sleep(0.5)
        client.send_signal(signal.SIGINT)
        code, _, err = finished(client, 8)
        time.sleep(0.2)
        no_iperf3_left(a)
    assert code == 130
    assert "Traceback" not in err and err.strip() in ("guestcheck: aborted", "guestcheck: interrupted")


def test_stopped_server_leaves_no_iperf3_running():
    with netns("gcst") as b:
        env = {**os.environ, "PYTHONPATH": REPO}
        server = b.popen([sys.executable, "-m", "guestcheck", "selftest", "--serve"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
        assert "listening" in server.stdout.readline()
        server.send_signal(signal.SIGTERM)
        code, out, _ = finished(server, 5)
        no_iperf3_left(b)
    assert code == 0 and out.strip().endswith("stopped (SIGTERM)")
