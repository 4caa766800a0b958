"""selftest's latency phase against the real iperf3, through a router namespace that shapes with tbf (issue 24).

Client a (10.198.1.1) -- router r (tbf 100 Mbit/s, limit 250 KB, on both of its egresses) -- server b (10.198.2.1).
Against a plain `iperf3 -s` (persistent and `-1`) and `guestcheck selftest --serve`: no failed run, and nothing in
the iperf3 server's own log caused by a probe (the probes never touch its port).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from typing import Iterator

import pytest

from tests.live.test_selftest_live import finish, start_serve, wait_listening
from tests.netns import Netns, guestcheck_in, requires_netns
from tests.netns import routed as netns_routed

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3"),
              pytest.mark.skipif(shutil.which("tc") is None, reason="needs tc (iproute2)")]

SERVER = "10.198.2.1"


def tbf(ns: Netns, dev: str, limit: int) -> None:
    ns.run(["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", "100mbit", "burst", "32kb", "limit",
            str(limit)])


def routed(limit: int = 250_000):
    """The client, router and server namespaces of tests/netns.py, the tbf on the router."""
    return netns_routed("gclt", limit)


@contextlib.contextmanager
def logged_iperf3(ns: Netns, tmp_path, *extra: str) -> Iterator[tuple[subprocess.Popen, object]]:
    log = tmp_path / "iperf3-server.log"
    with open(log, "w") as out:
        proc = ns.popen(["iperf3", "-s", "-p", "5201", *extra], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(ns, 5201)
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def selftest(ns: Netns, *args: str, timeout: float = 120) -> tuple[int, dict]:
    out = guestcheck_in(ns, "selftest", "--json", "--peer", SERVER, "--expect", "100M", *args, timeout=timeout)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def assert_measured(doc: dict, method: str, directions: tuple, seconds: int) -> None:
    lat = doc["latency"]
    assert lat["probe"] == {"method": method, "address": SERVER, "port": 5202}, lat
    assert lat["idle"]["count"] >= 20 and lat["idle"]["lost"] == 0
    assert 0 < lat["idle"]["p50_ms"] < 2
    for direction in directions:
        loaded = lat["loaded"][direction]
        runs = sum(1 for r in doc["runs"] if r["direction"] == direction)
        assert loaded["sent"] >= 20 * seconds * runs, loaded  # >= 20 probes a second during every run
        assert loaded["count"] >= 0.9 * loaded["sent"]
        assert lat["added"][direction]["p90_ms"] > 2  # a 250 KB queue at 100 Mbit/s: up to 20 ms
    assert lat["verdict"]["key"] in ("within", "over")


def test_a_persistent_iperf3_sees_no_probe(tmp_path):
    with routed() as (a, _r, b), logged_iperf3(b, tmp_path) as (_server, log):
        code, doc = selftest(a, "--duration", "3", "--parallel", "2")
    assert code == 0, doc
    assert len(doc["runs"]) == 4
    assert_measured(doc, "tcp-rst", ("upload", "download"), 3)
    text = log.read_text()
    assert "error" not in text.lower(), text  # a connection to its port would be logged as a failed test
    assert text.count("Server listening on 5201") >= 4, text  # a listen before each of the four tests


def test_a_one_shot_iperf3_serves_its_test_and_exits_cleanly(tmp_path):
    with routed() as (a, _r, b), logged_iperf3(b, tmp_path, "-1") as (server, log):
        code, doc = selftest(a, "--duration", "3", "--parallel", "1", "--direction", "upload")
        server.wait(timeout=10)
    assert code == 0 and len(doc["runs"]) == 1, doc
    assert server.returncode == 0
    assert_measured(doc, "tcp-rst", ("upload",), 3)
    assert "error" not in log.read_text().lower()


def test_serve_answers_with_its_echo_and_serves_every_run():
    with routed() as (a, _r, b):
        server = start_serve(b, "--once", "--time-limit", "120")
        code, doc = selftest(a, "--duration", "2", "--parallel", "1")
        served_code, out, err = finish(server, 15)
    assert code == 0, doc
    assert_measured(doc, "udp-echo", ("upload", "download"), 2)
    assert served_code == 0 and err == ""
    assert "failed" not in out and out.count("served 10.198.1.1") == 2, out


def test_cubic_over_the_target_names_the_queue_the_congestion_control_and_the_profile():
    """CUBIC fills the router's 250 KB (20 ms) queue: over a 5 ms target, exit 4; the queue is not on this machine."""
    with routed() as (a, _r, b), logged_iperf3(b, pytest_tmp()) as _:
        code, doc = selftest(a, "--duration", "3", "--parallel", "1", "--direction", "upload", "--congestion", "cubic",
                             "--latency-target", "5ms")
    assert code == 4 and doc["exit_code"] == 4 and doc["verdict"]["key"] == "near", doc
    lat = doc["latency"]
    assert lat["verdict"]["key"] == "over" and lat["verdict"]["direction"] == "upload"
    assert 10 < lat["added"]["upload"]["p50_ms"] < 25, lat["added"]
    causes = {c["cause"]: c for c in lat["causes"]}
    assert "the queue is not in this machine's qdiscs" in causes, lat["causes"]
    cc = causes["congestion control cubic fills the queue"]
    assert cc["fix"] == "guestcheck tune apply latency"
    assert doc["runs"][0]["congestion"] == "cubic"


def test_a_queue_on_this_machine_is_named_with_its_fix(tmp_path):
    """The tbf on the client's own interface: its backlog grows during the upload, and the cause names it."""
    with routed() as (a, r, b), logged_iperf3(b, tmp_path) as _:
        r.run(["tc", "qdisc", "del", "dev", "gcr1", "root"])
        tbf(a, "gc0", 250_000)
        code, doc = selftest(a, "--duration", "3", "--parallel", "1", "--direction", "upload", "--congestion", "cubic",
                             "--latency-target", "1ms")
    assert code == 4, doc
    queue = doc["latency"]["causes"][0]
    assert queue["cause"] == "a full queue: tbf on gc0", doc["latency"]
    assert queue["fix"].startswith("tc qdisc change dev gc0 root handle ") and "latency 5ms" in queue["fix"]
    assert "guestcheck tune apply latency" in queue["fix"]
    run = doc["latency"]["runs"][0]["queue"]
    assert run["device"] == "gc0" and run["limit_bytes"] == 250_000 and run["limit_ms"] == 20.0


def test_no_answering_port_skips_the_phase_with_exit_20_and_no_latency_skips_it_quietly(tmp_path):
    with routed() as (a, _r, b), logged_iperf3(b, tmp_path) as _:
        listener = b.popen(["iperf3", "-s", "-p", "5202"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(b, 5202)
            code, doc = selftest(a, "--duration", "1", "--parallel", "1", "--direction", "upload")
            off_code, off = selftest(a, "--duration", "1", "--parallel", "1", "--direction", "upload",
                                     "--no-latency")
        finally:
            listener.kill()
            listener.wait()
    assert code == 20 and doc["exit_code"] == 20 and doc["verdict"]["key"] == "near", doc
    assert doc["latency"]["probe"] is None and doc["latency"]["verdict"]["key"] == "no-probe"
    assert doc["latency"]["tried"][-1].startswith("tcp port 5202 answers with SYN-ACK")
    assert off_code == 0 and off["latency"] is None


def pytest_tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="gclat-"))
