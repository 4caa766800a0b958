"""The latency echo of `selftest --serve` against hostile traffic (guestcheck.selftest.echo).

Unknown sources, floods, oversized, truncated and foreign datagrams: first through the gate alone (any sequence
of sources, sizes and times), then through the real sockets on loopback from many source addresses. The
properties: a reply is the request itself (never larger: no amplification), only requests of ours within the size
cap are answered, per source and in total the replies stay within the caps over any window, and the sources
remembered stay bounded.
"""

from __future__ import annotations

import socket
import struct
import time

from hypothesis import given
from hypothesis import strategies as st

from guestcheck.selftest.echo import MAGIC, MAX_BYTES, MIN_BYTES, EchoGate, UdpEcho, is_request

ours = st.builds(lambda seq, n: (MAGIC + struct.pack("!Q", seq)).ljust(n, b"\0"),
                 st.integers(0, 2**64 - 1), st.integers(MIN_BYTES, MAX_BYTES + 40))
foreign = st.binary(min_size=0, max_size=300)
cut = st.builds(lambda data, n: data[:n], ours, st.integers(0, MIN_BYTES - 1))  # truncated requests
datagram = st.one_of(ours, foreign, cut)


@given(st.lists(st.tuples(st.integers(0, 40), datagram, st.booleans(), st.floats(0, 0.05)), max_size=400),
       st.sampled_from([1, 8, 64]))
def test_the_gate_never_amplifies_and_keeps_its_caps(traffic, max_sources):
    gate = EchoGate(per_source_pps=20, per_source_burst=4, total_pps=100, total_burst=10, max_sources=max_sources)
    now = 0.0
    answered: dict = {}
    total = 0
    for source_id, data, truncated, step in traffic:
        now += step
        source = f"192.0.2.{source_id}"
        reply = gate.answer(data, source, now, truncated)
        if reply is not None:
            assert reply == data and len(reply) <= len(data)
            assert is_request(data, truncated) and not truncated and len(data) <= MAX_BYTES
            answered.setdefault(source, []).append(now)
            total += 1
        assert len(gate.sources) <= max_sources
    assert total <= 10 + 100 * now + 1e-9
    for times in answered.values():
        # within any window, a source gets at most its burst plus the refill; forgetting a source (max_sources)
        # gives it a fresh burst, so the bound holds per remembered stretch: checked when nothing was forgotten
        if max_sources > 40:
            assert len(times) <= 4 + 20 * (times[-1] - times[0]) + 1e-9


@given(st.lists(st.tuples(st.integers(1, 6), datagram), min_size=1, max_size=300))
def test_the_real_echo_under_a_flood_from_many_sources(traffic):
    echo = UdpEcho("127.0.0.1", 0)
    port = echo.sockets[0].getsockname()[1]
    echo.gate = EchoGate(per_source_pps=20, per_source_burst=5, total_pps=60, total_burst=12)
    echo.start()
    clients = {}
    sent: dict = {}
    started = time.monotonic()
    try:
        for source_id, data in traffic:
            if source_id not in clients:
                c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                c.bind((f"127.0.1.{source_id}", 0))  # an unknown source address of its own (lo holds 127/8)
                c.setblocking(False)
                clients[source_id] = c
            try:
                clients[source_id].sendto(data, ("127.0.0.1", port))
            except OSError:
                continue
            sent.setdefault(source_id, []).append(data)
        for c in clients.values():
            c.sendto(b"\xff" * 9000, ("127.0.0.1", port))  # oversized: read truncated, never echoed
        time.sleep(0.3)
    finally:
        echo.close()
    elapsed = time.monotonic() - started
    replies_total = 0
    for source_id, c in clients.items():
        replies = []
        while True:
            try:
                data, where = c.recvfrom(65536)
            except BlockingIOError:
                break
            assert where == ("127.0.0.1", port)  # from the address it is bound to
            replies.append(data)
        c.close()
        valid = [d for d in sent.get(source_id, []) if is_request(d)]
        for reply in replies:
            assert reply in valid and len(reply) <= MAX_BYTES  # the request itself: no amplification
        assert sum(map(len, replies)) <= sum(map(len, sent.get(source_id, [])))
        assert len(replies) <= 5 + 20 * elapsed
        replies_total += len(replies)
    assert replies_total <= 12 + 60 * elapsed
    assert echo.gate.counts["answered"] == replies_total
