"""The latency echo of `selftest --serve` (guestcheck.selftest.echo): its caps, no amplification, the address it
answers on; and the probes (guestcheck.selftest.rttprobe) against it and against a closed port, on loopback."""

from __future__ import annotations

import socket
import struct

import pytest

from guestcheck.selftest.echo import MAGIC, MAX_BYTES, MIN_BYTES, EchoGate, UdpEcho, is_request
from guestcheck.selftest.rttprobe import REQUEST_BYTES, TCP_RST, UDP_ECHO, Prober, Target, choose_target


def request(n: int = 32) -> bytes:
    return (MAGIC + struct.pack("!Q", 7)).ljust(n, b"\0")


def test_only_whole_requests_of_ours_within_the_size_cap_are_answered():
    assert is_request(request(MIN_BYTES)) and is_request(request(MAX_BYTES))
    assert not is_request(request(MAX_BYTES + 1))
    assert not is_request(request(MIN_BYTES)[:-1])
    assert not is_request(b"XXXX" + request()[4:])
    assert not is_request(request(), truncated=True)


def test_the_reply_is_the_request_itself():
    gate = EchoGate()
    data = request(40)
    assert gate.answer(data, "10.0.0.1", 0.0) == data
    assert gate.answer(b"x" * 10, "10.0.0.1", 0.0) is None


def test_per_source_cap_whatever_the_port_and_refill():
    gate = EchoGate(per_source_pps=10, per_source_burst=5, total_pps=1000, total_burst=1000)
    answered = sum(gate.admit("10.0.0.1", 0.0) for _ in range(50))
    assert answered == 5  # the burst, then nothing in the same instant
    assert gate.admit("10.0.0.2", 0.0)  # another source has its own bucket
    assert sum(gate.admit("10.0.0.1", 0.0 + 1.0) for _ in range(50)) == 5  # 10/s refill, capped at the burst
    assert sum(gate.admit("10.0.0.1", 1.0 + i / 20) for i in range(1, 41)) == 20  # 2 s at 20/s asked: 10/s given
    assert gate.counts["source_limit"] > 0


def test_total_cap_over_many_sources():
    gate = EchoGate(per_source_pps=100, per_source_burst=100, total_pps=50, total_burst=20)
    answered = sum(gate.admit(f"10.0.{i // 250}.{i % 250}", 0.0) for i in range(1000))
    assert answered == 20 and gate.counts["total_limit"] == 980


def test_the_sources_remembered_are_bounded():
    gate = EchoGate(max_sources=8)
    for i in range(100):
        gate.admit(f"10.0.0.{i}", float(i))
    assert len(gate.sources) == 8 and "10.0.0.99" in gate.sources and "10.0.0.0" not in gate.sources


def _client(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    return sock


def test_a_wildcard_echo_answers_from_the_address_the_request_came_to():
    echo = UdpEcho(None, 0)  # port 0: the kernel picks; both sockets share none, so take the IPv4 one's
    port = echo.sockets[0].getsockname()[1]
    echo.close()
    echo = UdpEcho(None, port).start()
    try:
        with _client() as c:
            c.sendto(request(), ("127.0.0.2", port))
            data, source = c.recvfrom(256)
        assert data == request() and source == ("127.0.0.2", port)
    finally:
        echo.close()


def test_a_bound_echo_answers_only_on_its_address():
    echo = UdpEcho("127.0.0.1", 0)
    port = echo.sockets[0].getsockname()[1]
    echo.start()
    try:
        with _client() as c:
            c.sendto(request(), ("127.0.0.3", port))
            with pytest.raises((socket.timeout, ConnectionRefusedError)):
                c.recvfrom(256)
        with _client() as c:
            c.sendto(request(), ("127.0.0.1", port))
            assert c.recvfrom(256) == (request(), ("127.0.0.1", port))
    finally:
        echo.close()
    assert echo.sockets == []


def test_a_port_in_use_is_an_oserror_and_leaves_nothing_open():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(OSError):
            UdpEcho("127.0.0.1", taken.getsockname()[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probes_time_the_echo_and_a_closed_tcp_port():
    port = _free_port()
    echo = UdpEcho("127.0.0.1", port).start()
    try:
        samples = Prober(Target(UDP_ECHO, "127.0.0.1", port), rate=50).run_for(0.4)
        assert samples.sent >= 12 and len(samples.rtts_ms) == samples.sent and samples.lost == 0
        assert all(0 < ms < 50 for ms in samples.rtts_ms)
        assert echo.gate.counts["answered"] == samples.sent
    finally:
        echo.close()
    samples = Prober(Target(TCP_RST, "127.0.0.1", port), rate=50).run_for(0.4)
    assert samples.sent >= 12 and len(samples.rtts_ms) == samples.sent and samples.listener == 0


def test_choosing_a_port_prefers_the_echo_and_refuses_a_listener():
    port = _free_port()
    echo = UdpEcho("127.0.0.1", port + 1).start()
    try:
        assert choose_target("127.0.0.1", port, None, None).target == Target(UDP_ECHO, "127.0.0.1", port + 1)
    finally:
        echo.close()
    assert choose_target("127.0.0.1", port, None, None).target == Target(TCP_RST, "127.0.0.1", port + 1)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        choice = choose_target("127.0.0.1", port, taken, 0)
    assert choice.target is None
    assert choice.tried == [f"tcp port {taken} answers with SYN-ACK: an application listens there and would see "
                            "the probes (choose a closed port with --probe-port)"]
    assert REQUEST_BYTES <= MAX_BYTES
