"""The server side: reading `iperf3 -s -J`'s stream of objects and knowing when a session is over.

The stream below is what iperf3 3.12 printed for a two-run guestcheck session followed by a bare TCP
connection (our connect probe), trimmed of intervals; the WARNING line is iperf3's own."""

from __future__ import annotations

import json
import os
import socket

import pytest

from guestcheck.selftest.serve import json_objects, listening, parse_served, server_argv


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
    assert junk == ["WARNING:  Size of data read does not correspond to offered length"]


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
