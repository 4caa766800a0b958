"""The TCP connect round-trip probe, on loopback sockets and with scripted misses."""

from __future__ import annotations

import socket

from guestcheck.selftest import probe


def test_listening_port_answers_with_syn_ack():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        rtt = probe.connect_rtt("127.0.0.1", server.getsockname()[1])
    assert rtt is not None and rtt.answers == ["syn-ack"] * 3 and rtt.min_ms > 0


def test_closed_port_answers_with_rst():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the kernel answers RST
        rtt = probe.connect_rtt("127.0.0.1", port)
    assert rtt is not None and rtt.answers == ["rst"] * 3


def test_a_transient_miss_is_retried_and_a_timeout_ends_the_probe(monkeypatch):
    script = iter([(0.1, "syn-ack"), (None, "ECONNRESET"), (0.2, "rst"), (0.3, "rst")])
    monkeypatch.setattr(probe, "connect_once", lambda *a: next(script))
    rtt = probe.connect_rtt("192.0.2.7", 5201)
    assert rtt.samples_ms == [0.1, 0.2, 0.3]

    script = iter([(0.1, "syn-ack"), (None, probe.TIMED_OUT), (0.2, "rst")])
    monkeypatch.setattr(probe, "connect_once", lambda *a: next(script))
    assert probe.connect_rtt("192.0.2.7", 5201).samples_ms == [0.1]


def test_a_peer_that_never_answers_gives_none(monkeypatch):
    monkeypatch.setattr(probe, "connect_once", lambda *a: (None, "EHOSTUNREACH"))
    assert probe.connect_rtt("192.0.2.7", 5201) is None
