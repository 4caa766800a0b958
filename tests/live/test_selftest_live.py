"""selftest against the real iperf3 between two network namespaces joined by veth, shaped by tbf.

Shaped to the expected rate the verdict is "near line rate"; shaped to a tenth of it, "far below".
Traffic stays on the veth pair inside namespaces these tests create.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import time
from typing import Iterator

import pytest

from tests.netns import Netns, guestcheck_in, netns, requires_netns, tbf_limit, veth_pair
from tests.tmux import pane, requires_tmux

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3"),
              pytest.mark.skipif(shutil.which("tc") is None, reason="needs tc (iproute2)")]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT, SERVER = "10.199.0.1", "10.199.0.2"


@contextlib.contextmanager
def shaped_path(rate: str) -> Iterator[tuple[Netns, Netns]]:
    """Client namespace a (gc0, 10.199.0.1), server namespace b (gc1, 10.199.0.2), both egresses at `rate`."""
    with netns("gcst") as a, netns("gcst") as b, veth_pair(a, b):
        reshape(a, b, rate)
        yield a, b


def reshape(a: Netns, b: Netns, rate: str) -> None:
    tbf_limit(a, "gc0", rate)
    tbf_limit(b, "gc1", rate)


def wait_listening(ns: Netns, port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ns.run(["ss", "-Hltn", f"sport = :{port}"]).stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} in {ns.name}")


@contextlib.contextmanager
def iperf3_server(ns: Netns, port: int = 5201, *extra: str) -> Iterator[subprocess.Popen]:
    """A plain `iperf3 -s` (what most peers run), killed afterwards."""
    proc = ns.popen(["iperf3", "-s", "-p", str(port), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(ns, port)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no output within {timeout}s")
    return proc.stdout.readline()


def start_serve(ns: Netns, *args: str) -> subprocess.Popen:
    """`guestcheck selftest --serve ARGS` in `ns`, returned once it says it listens."""
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = ns.popen([sys.executable, "-m", "guestcheck", "selftest", "--serve", *args], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, env=env)
    line = read_line(proc, 15)
    assert "iperf3 server listening" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def selftest_json(ns: Netns, *args: str, timeout: float = 120) -> tuple[int, dict, subprocess.CompletedProcess]:
    out = guestcheck_in(ns, "selftest", "--json", *args, timeout=timeout)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout), out


def test_shaped_to_the_expected_rate_is_near_line_rate(tmp_path):
    saved = tmp_path / "run.json"
    with shaped_path("100mbit") as (a, b):
        server = start_serve(b, "--once", "--time-limit", "120")
        code, doc, _ = selftest_json(a, "--peer", SERVER, "--expect", "100M", "--duration", "2", "--parallel", "2",
                                     "--save", str(saved))
        served_code, served_out, served_err = finish(server, 15)
    assert code == 0, doc
    assert doc["verdict"]["key"] == "near" and doc["verdict"]["label"] == "near line rate"
    assert doc["expected"] == {"bps": 100e6, "source": "--expect", "interface": None}
    assert [(r["direction"], r["streams"]) for r in doc["runs"]] == [
        ("upload", 1), ("upload", 2), ("download", 1), ("download", 2)]
    for run in doc["runs"]:
        assert 0.80 <= run["ratio"] <= 1.02, run  # tbf at 100 Mbit/s carries ~95.6 Mbit/s of TCP payload
        assert isinstance(run["retransmits"], int)
        assert run["cpu_local_percent"] is not None and run["cpu_remote_percent"] is not None
        assert run["rtt_mean_ms"] > 0  # the server's own JSON gives the sender's RTT on downloads
    assert doc["connect_rtt"]["min_ms"] > 0 and len(doc["connect_rtt"]["samples_ms"]) == 3
    assert doc["causes"] == [] and doc["iperf3"]["version"].startswith("iperf 3.")
    assert json.loads(saved.read_text()) == doc
    # the --once server served the four runs of this one session, then stopped by itself
    assert served_code == 0, served_err
    served = [line for line in served_out.splitlines() if "served 10.199.0.1" in line]
    assert [line.rsplit("(", 1)[1] for line in served] == [f"guestcheck run {i}/4)" for i in range(1, 5)]


def test_shaped_to_a_tenth_is_far_below():
    with shaped_path("10mbit") as (a, b), iperf3_server(b):
        out = guestcheck_in(a, "selftest", "--peer", SERVER, "--expect", "100M", "--duration", "2",
                            "--parallel", "2", timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"guestcheck selftest: {SERVER} port 5201, 2s per run, expected 100 Mbit/s (--expect)"
    runs = [line.split() for line in lines[1:5]]
    assert [r[0] for r in runs] == ["upload", "upload", "download", "download"]
    for r in runs:
        assert r[4] == "Mbit/s" and 8.0 <= float(r[3]) <= 10.2, r
    verdict = next(line for line in lines if line.startswith("verdict: "))
    assert verdict.startswith("verdict: FAR BELOW LINE RATE (")
    assert any(line.startswith("likely causes") or line.startswith("doctor also reports") for line in lines)


def test_far_below_names_doctors_findings_on_the_path_as_causes():
    """Offloads switched off on the client's veth: the slow result is explained by doctor's finding."""
    with shaped_path("10mbit") as (a, b), iperf3_server(b):
        a.run(["ethtool", "-K", "gc0", "tso", "off", "gso", "off"])
        code, doc, _ = selftest_json(a, "--peer", SERVER, "--expect", "100M", "--duration", "2", "--parallel", "1",
                                     "--direction", "upload")
    assert code == 2 and doc["verdict"]["label"] == "far below line rate", doc["verdict"]
    causes = {c["finding"]: c for c in doc["causes"]}
    assert {"OFFLOAD-TSO-OFF", "OFFLOAD-GSO-OFF"} <= set(causes), doc["causes"]
    assert causes["OFFLOAD-TSO-OFF"]["subject"] == "gc0"
    assert causes["OFFLOAD-TSO-OFF"]["fix"] == "ethtool -K gc0 tso on"


def test_compare_shows_the_change_after_raising_the_limit(tmp_path):
    before = tmp_path / "before.json"
    args = ("--peer", SERVER, "--expect", "100M", "--duration", "2", "--parallel", "1", "--direction", "upload")
    with shaped_path("10mbit") as (a, b), iperf3_server(b):
        code_before, doc_before, _ = selftest_json(a, *args, "--save", str(before))
        reshape(a, b, "100mbit")
        code_after, doc_after, _ = selftest_json(a, *args, "--compare", str(before))
        human = guestcheck_in(a, "selftest", *args, "--compare", str(before), timeout=60)
    assert (code_before, code_after) == (2, 0)
    cmp = doc_after["compare"]
    assert (cmp["before_verdict"], cmp["after_verdict"]) == ("far below line rate", "near line rate")
    (row,) = cmp["runs"]
    assert row["before_bps"] == doc_before["runs"][0]["throughput_bps"]
    assert 8 <= row["change"] <= 12, row  # ten times the rate, give or take tbf's granularity
    assert f"compared with {before}" in human.stdout
    assert "  verdict: far below line rate -> near line rate" in human.stdout


def test_a_veths_nominal_speed_is_not_taken_for_a_line_rate():
    """A veth shaped to 200 Mbit/s says 10000 Mb/s: without --expect, selftest asks for it instead of judging."""
    with shaped_path("200mbit") as (a, b), iperf3_server(b):
        speed = int(a.run(["cat", "/sys/class/net/gc0/speed"]).stdout)
        code, doc, out = selftest_json(a, "--peer", SERVER, "--duration", "1", "--parallel", "1",
                                       "--direction", "upload")
    assert speed == 10000
    assert code == 17 and doc["error"]["kind"] == "expect-unknown", doc
    assert out.stderr.strip() == (
        "Error: interface gc0 is a software NIC: its nominal 10000 Mb/s is not a line rate (only physical NICs "
        "and SR-IOV VFs report one): pass the rate you expect, e.g. --expect 1G")


def test_no_route_to_the_peer_exits_10_before_asking_for_expect():
    with shaped_path("100mbit") as (a, _b):
        code, doc, out = selftest_json(a, "--peer", "10.199.77.1", "--duration", "1", "--timeout", "2")
    assert code == 10 and doc["error"]["kind"] == "unreachable", doc
    assert out.stderr.strip() == ("Error: no route to 10.199.77.1 (10.199.77.1): the kernel has no route to that "
                                  "address from this machine")


def test_ipv6_peer_with_a_port_and_a_bound_server():
    with netns("gcst") as a, netns("gcst") as b, veth_pair(a, b):
        a.ip("addr", "add", "fd00:199::1/64", "dev", "gc0", "nodad")
        b.ip("addr", "add", "fd00:199::2/64", "dev", "gc1", "nodad")
        reshape(a, b, "100mbit")
        server = start_serve(b, "--bind", "fd00:199::2", "--port", "5301", "--once", "--time-limit", "60")
        code, doc, _ = selftest_json(a, "--peer", "[fd00:199::2]:5301", "--expect", "100M", "--duration", "1",
                                     "--parallel", "1", "--direction", "download")
        served_code, served_out, _ = finish(server, 15)
    assert code == 0, doc
    assert doc["peer"] == {"host": "fd00:199::2", "port": 5301, "address": "fd00:199::2"}
    assert doc["runs"][0]["direction"] == "download" and doc["runs"][0]["ratio"] >= 0.8
    assert served_code == 0 and "served fd00:199::1: download, 1 stream, sent" in served_out


def test_serve_stops_at_its_time_limit_and_reports_a_port_in_use():
    with netns("gcst") as b:
        start = time.monotonic()
        server = start_serve(b, "--time-limit", "1.5")
        with iperf3_server(b, 5302):
            busy_port = guestcheck_in(b, "selftest", "--serve", "--port", "5302", "--time-limit", "5", timeout=30)
        code, out, _ = finish(server, 15)
        elapsed = time.monotonic() - start
        left = b.run(["ss", "-Hltn"]).stdout
    assert code == 0 and "time limit reached" in out
    assert elapsed < 1.5 + 5
    assert left.strip() == ""  # no iperf3 left listening in the namespace
    assert busy_port.returncode == 18
    assert busy_port.stderr.strip() == ("Error: iperf3 cannot serve on port 5302: unable to start listener for "
                                        "connections: Address already in use")


@requires_tmux
def test_a_terminal_sees_each_runs_progress_and_then_the_same_report():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with shaped_path("100mbit") as (a, b), iperf3_server(b):
        argv = ["ip", "netns", "exec", a.name, "env", f"PYTHONPATH={repo}", sys.executable, "-m", "guestcheck",
                "selftest", "--peer", "10.199.0.2", "--expect", "100M", "--duration", "4", "--direction",
                "upload"]
        with pane(argv) as p:
            seen = p.wait_for(lambda s: re.search(r"run 1/2: upload, 1 stream: [23] s of 4 s, [\d.]+ Mbit/s", s),
                              20, "the first run's progress with a rate")
            rate = float(re.search(r"of 4 s, ([\d.]+) Mbit/s", seen).group(1))
            assert 0 < rate <= 110, seen  # iperf3's socket writes, at most the 100 Mbit/s shaper (slower under load)
            p.wait_for(lambda s: "run 2/2: upload, 4 streams" in s, 20, "the second run's progress")
            assert p.wait_exit(60) == 0
            screen = p.text()
    assert "verdict: NEAR" in screen and "run 2/2" not in screen, screen  # the line is erased when done
