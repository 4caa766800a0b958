"""collect/tc.py: qdisc, class and filter answers decoded as tc prints them, and hostile bytes never raise."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from guestcheck.collect.tc import RTM_NEWQDISC, RTM_NEWTCLASS, TCMSG, parse_filter, parse_tc, tc_handle, tc_parent


def attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * ((4 - size % 4) % 4)


def ratespec(rate: int) -> bytes:
    return struct.pack("=BBHhHI", 0, 0, 0, 0, 0, rate)


def message(kind: str, options: bytes, ifindex: int = 2, handle: int = 0x80010000, parent: int = 0xFFFFFFFF,
            drops: int = 7, overlimits: int = 149_835, backlog: int = 3000) -> bytes:
    stats = attr(1, struct.pack("=QI", 1_500_000, 1000) + b"\0" * 4) + \
        attr(3, struct.pack("=5I", 2, backlog, drops, 1, overlimits))
    return TCMSG.pack(0, ifindex, handle, parent, 0) + attr(1, kind.encode() + b"\0") + attr(2, options) + \
        attr(7, stats)


def test_a_tbf_gives_its_rate_limit_burst_and_counters():
    parms = ratespec(12_500_000) + ratespec(0) + struct.pack("=III", 256_000, 2_621_440 >> 6, 1514)
    q = parse_tc(RTM_NEWQDISC, message("tbf", attr(1, parms)))
    assert (q.kind, tc_handle(q.handle), tc_parent(q.parent), q.rate_bytes_per_s, q.limit, q.limit_unit) == \
        ("tbf", "8001:", "root", 12_500_000, 256_000, "bytes")
    assert q.burst_bytes == 32768  # the bucket's 2.62 ms of 64 ns ticks at 100 Mbit/s
    c = q.counters
    assert (c.drops, c.overlimits, c.requeues, c.backlog_bytes, c.backlog_packets, c.packets) == \
        (7, 149_835, 1, 3000, 2, 1000)


def test_a_64_bit_rate_replaces_the_32_bit_one():
    parms = ratespec(0xFFFFFFFF) + ratespec(0) + struct.pack("=III", 1, 1, 1)
    q = parse_tc(RTM_NEWQDISC, message("tbf", attr(1, parms) + attr(4, struct.pack("=Q", 5_000_000_000))))
    assert q.rate_bytes_per_s == 5_000_000_000


def test_an_htb_class_shapes_at_its_ceil_and_hfsc_at_its_upper_limit():
    htb = parse_tc(RTM_NEWTCLASS, message("htb", attr(1, ratespec(1_250_000) + ratespec(6_250_000)
                                                      + struct.pack("=5I", 0, 0, 0, 0, 0)), handle=0x10010))
    assert htb.is_class and tc_handle(htb.handle) == "1:10" and htb.rate_bytes_per_s == 6_250_000
    hfsc = parse_tc(RTM_NEWTCLASS, message("hfsc", attr(3, struct.pack("=3I", 0, 0, 2_500_000))))
    assert hfsc.rate_bytes_per_s == 2_500_000


def test_cake_fifos_and_aqm_limits():
    assert parse_tc(RTM_NEWQDISC, message("cake", attr(2, struct.pack("=Q", 3_000_000)))).rate_bytes_per_s == 3_000_000
    fifo = parse_tc(RTM_NEWQDISC, message("pfifo", struct.pack("=I", 1000)))
    assert (fifo.limit, fifo.limit_unit) == (1000, "packets")
    assert parse_tc(RTM_NEWQDISC, message("bfifo", struct.pack("=I", 9000))).limit_unit == "bytes"
    codel = parse_tc(RTM_NEWQDISC, message("fq_codel", attr(1, struct.pack("=I", 5000))
                                           + attr(2, struct.pack("=I", 10240))))
    assert (codel.limit, codel.limit_unit) == (10240, "packets")


def test_an_ingress_filter_redirecting_to_an_ifb_and_a_policer_are_found_in_their_nests():
    gen = struct.pack("=IIiii", 1, 0, 4, 1, 1)
    mirred = attr(1, attr(1, b"mirred\0") + attr(2, attr(2, gen + struct.pack("=iI", 1, 9))))
    police = attr(2, attr(1, b"police\0") + attr(2, attr(1, struct.pack("=IiIII", 3, 2, 0, 0, 0) + ratespec(125_000)
                                                          + ratespec(0) + b"\0" * 12))
                  + attr(4, attr(3, struct.pack("=5I", 0, 0, 44, 0, 55))))
    body = TCMSG.pack(0, 2, 0, 0xFFFF0000, 0) + attr(1, b"u32\0") + attr(2, attr(7, mirred + police))
    redirects, policers = parse_filter(body)
    assert [(r.ifindex, r.target, r.action) for r in redirects] == [(2, 9, "egress redirect")]
    assert [(p.kind, p.rate_bytes_per_s, p.counters.drops, p.counters.overlimits) for p in policers] == \
        [("police", 125_000, 44, 55)]


def test_a_kind_that_is_not_a_name_is_refused():
    assert parse_tc(RTM_NEWQDISC, message("tb\x1bf", b"")) is None
    assert parse_tc(99, message("tbf", b"")) is None


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_truncated_or_random_answers_never_raise(noise: bytes, cut: int):
    parms = ratespec(12_500_000) + ratespec(0) + struct.pack("=III", 256_000, 100, 1514)
    whole = message("tbf", attr(1, parms))
    for body in (whole[:cut], noise, whole[:20] + noise):
        parse_tc(RTM_NEWQDISC, body)
        parse_tc(RTM_NEWTCLASS, body)
        parse_filter(body)
