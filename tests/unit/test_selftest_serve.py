"""The server side: reading `iperf3 -s -J`'s stream of objects and knowing when a session is over.

The stream below is what iperf3 3.12 printed for a two-run guestcheck session followed by a bare TCP
connection (our connect probe), trimmed of intervals; the WARNING line is iperf3's own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guestcheck.selftest.serve import (
    DEFAULT_TIME_LIMIT,
    describe_start,
    json_objects,
    listening,
    parse_served,
    server_argv,
)

REPO = Path(__file__).resolve().parents[2]


def pretty(obj: dict) -> str:
    return json.dumps(obj, indent="\t") + "\n"  # cJSON prints top-level braces at column 0, like this


RUN_1 = {"start": {"connected": [{"local_host": "10.198.0.2", "remote_host": "10.198.0.1", "remote_port": 43336},
                                 {"local_host": "10.198.0.2", "remote_host": "10.198.0.1", "remote_port": 43340}],
                   "version": "iperf 3.12", "accepted_connection": {"host": "10.198.0.1", "port": 43322},
                   "test_start": {"num_streams": 2, "duration": 1, "reverse": 0}},
         "intervals": [], "end": {"sum_sent": {"bits_per_second": 0, "sender": False},
                                  "sum_received": {"bits_per_second": 95569419.71405914, "sender": False}},
         "extra_data": "guestcheck-selftest/1 session=ab12cd34 run=1/2"}
RUN_2 = {"start": {"connected": [{"local_host": "10.198.0.2", "remote_host": "10.198.0.1", "remote_port": 43370}],
                   "version": "iperf 3.12", "accepted_connection": {"host": "10.198.0.1", "port": 43356},
                   "test_start": {"num_streams": 1, "duration": 1, "reverse": 1}},
         "intervals": [], "end": {"sum_sent": {"bits_per_second": 105400902.99269877, "retransmits": 0,
                                               "sender": True},
                                  "sum_received": {"bits_per_second": 0, "sender": True}},
         "extra_data": "guestcheck-selftest/1 session=ab12cd34 run=2/2"}
PROBE = {"start": {"connected": [], "version": "iperf 3.12"}, "intervals": [], "end": {},
         "error": "error - unable to receive parameters from client: Bad file descriptor"}
STREAM = (pretty(RUN_1) + pretty(RUN_2) + "WARNING:  Size of data read does not correspond to offered length\n"
          + pretty(PROBE))


def test_objects_are_split_and_junk_lines_kept_aside():
    junk: list[str] = []
    objects = [json.loads(text) for text in json_objects(iter(STREAM.splitlines(True)), junk)]
    assert objects == [RUN_1, RUN_2, PROBE]
    assert junk == ["WARNING: Size of data read does not correspond to offered length"]  # one line, squeezed


def test_served_tests_read_from_the_servers_side():
    first, second = parse_served(RUN_1), parse_served(RUN_2)
    assert (first.client, first.direction, first.streams, first.run) == ("10.198.0.1", "upload", 2, (1, 2))
    assert first.throughput_bps == pytest.approx(95569419.7)  # the server received it
    assert second.direction == "download" and second.throughput_bps == pytest.approx(105400903)  # it sent it
    assert first.describe() == "served 10.198.0.1: upload, 2 streams, received 95.6 Mbit/s (guestcheck run 1/2)"
    assert second.describe() == "served 10.198.0.1: download, 1 stream, sent 105 Mbit/s (guestcheck run 2/2)"


def test_when_a_once_server_stops():
    assert not parse_served(RUN_1).ends_session  # run 1 of 2: more to come
    assert parse_served(RUN_2).ends_session  # the last run of the session
    assert parse_served(PROBE) is None  # a connection that started no test is not a client served
    plain = {k: v for k, v in RUN_1.items() if k != "extra_data"}
    assert parse_served(plain).ends_session and parse_served(plain).run is None  # a plain iperf3 client
    failed = {**RUN_1, "error": "error - control socket has closed unexpectedly"}
    assert parse_served(failed).ends_session  # the client gives up after a failed run
    assert parse_served(failed).describe().startswith("test from 10.198.0.1 failed: upload, 2 streams: error")
    foreign = {**RUN_1, "extra_data": "someone else's run=1/2"}
    assert parse_served(foreign).run is None


def test_server_argv():
    argv = server_argv("/usr/bin/iperf3", "fd00::2", 5301, 3, frozenset({"--rcv-timeout"}))
    assert argv == ["/usr/bin/iperf3", "-s", "-J", "-p", "5301", "-B", "fd00::2", "--rcv-timeout", "3000"]
    assert "-1" not in argv  # --once is ours: iperf3's -1 would stop after the first of several runs
    assert server_argv("iperf3", None, 5201, 3, frozenset()) == ["iperf3", "-s", "-J", "-p", "5201"]


@pytest.mark.parametrize("family,address", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_listening_finds_this_process_socket_in_proc_net(family, address):
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            pytest.skip(f"no {address} here")
        port = sock.getsockname()[1]
        assert not listening(os.getpid(), port)  # bound, not yet listening
        sock.listen()
        assert listening(os.getpid(), port)
        assert not listening(os.getpid(), port + 1 if port < 65535 else port - 1)
    assert not listening(os.getpid(), port)


@pytest.mark.parametrize("path,value", [
    (("extra_data",), "guestcheck-selftest/1 session=ab run=" + "9" * 5000 + "/2"),  # killed --serve (issue 9)
    (("extra_data",), ["run=1/2"]), (("start",), "x"), (("start", "connected"), "abc"),
    (("start", "connected"), [1, 2]), (("start", "test_start"), []), (("start", "test_start", "num_streams"), "2"),
    (("start", "test_start", "num_streams"), 2**70), (("start", "test_start", "reverse"), "1"),
    (("start", "accepted_connection", "host"), {"a": 1}), (("end",), [1]), (("end", "sum_received"), 5),
    (("end", "sum_received", "bits_per_second"), float("nan")), (("error",), ["x"]),
])
def test_a_hostile_client_result_is_read_without_an_exception(path, value):
    doc = json.loads(json.dumps(RUN_1))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    test = parse_served(doc)
    if test is not None:
        assert 1 <= test.streams <= 128 and test.direction in ("upload", "download")
        assert test.throughput_bps is None or 0 <= test.throughput_bps <= 1e15
        assert test.run is None or all(n < 10**6 for n in test.run)
        line = test.describe()
        assert line.isprintable(), line


def test_client_text_is_printable_in_what_serve_prints():
    doc = json.loads(json.dumps(RUN_1))
    doc["start"]["accepted_connection"]["host"] = "10.0.0.1\x1b[2J"
    doc["error"] = "error - \x1b]0;owned\x07"
    line = parse_served(doc).describe()
    assert "\x1b" not in line and "10.0.0.1\\x1b[2J" in line and line.isprintable()


def test_an_object_too_long_to_keep_is_skipped(monkeypatch):
    import guestcheck.selftest.serve as serve_module

    monkeypatch.setattr(serve_module, "MAX_OBJECT_CHARS", 2000)
    big = {**RUN_2, "intervals": ["x" * 50 for _ in range(100)]}
    junk: list[str] = []
    stream = pretty(big) + pretty(RUN_1)
    objects = [json.loads(text) for text in json_objects(iter(stream.splitlines(True)), junk)]
    assert objects == [RUN_1]
    assert len(pretty(RUN_1)) < 2000 < len(pretty(big))
    assert junk == ["an iperf3 result longer than 2000 characters was skipped"]


def test_the_first_line_says_where_and_for_how_long():
    assert describe_start(None, 5201, False, 600) == ("iperf3 server listening on all addresses (--bind ADDR narrows "
                                                      "it) port 5201, time limit 600s")
    assert describe_start("fd00::2", 5301, True, None) == ("iperf3 server listening on [fd00::2] port 5301, "
                                                           "one session, no time limit")


def test_default_time_limit_is_ten_minutes():
    assert DEFAULT_TIME_LIMIT == 600


@pytest.fixture()
def fake(tmp_path):
    from tests.fuzz.fake_iperf3 import FakeIperf3

    return FakeIperf3(tmp_path / "bin")


def serve_with(fake, *args: str) -> subprocess.Popen:
    fake.script_server(b"", then_exit=False)
    env = {**os.environ, "PYTHONPATH": str(REPO), **fake.env}
    proc = subprocess.Popen([sys.executable, "-m", "guestcheck", "selftest", "--serve", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "iperf3 server listening" in proc.stdout.readline()
    return proc


def gone_within(pid: int, seconds: float) -> bool:
    from tests.fuzz.fake_iperf3 import alive

    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_hangup_stops_serve_like_sigterm(fake, sig):
    """The SSH session closed: SIGHUP stops the server and its iperf3 (a fake one, on 127.0.0.1 only)."""
    from tests.fuzz.fake_iperf3 import free_port

    proc = serve_with(fake, "--port", str(free_port()))
    iperf3 = fake.server_pid()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and err == ""
    assert out.strip().endswith(f"stopped ({sig.name})")
    assert gone_within(iperf3, 2)


def test_sigkill_takes_iperf3_with_it(fake):
    """No finally-block runs after SIGKILL: the kernel's parent-death signal kills iperf3."""
    from tests.fuzz.fake_iperf3 import free_port

    proc = serve_with(fake, "--port", str(free_port()), "--time-limit", "0")
    iperf3 = fake.server_pid()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert gone_within(iperf3, 2)
