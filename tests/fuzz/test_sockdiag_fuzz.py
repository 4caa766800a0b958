"""sockdiag's connection decoder on truncated and hostile answers: never an exception, never a value read past the
length the kernel (or an attacker) gave."""

from __future__ import annotations

import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from guestcheck.rtnetlink import NLMSG, RTA, AttributeLayout
from guestcheck.sockdiag import (
    INET_DIAG_CONG,
    INET_DIAG_INFO,
    INET_DIAG_SKMEMINFO,
    MSG,
    SOCK_DIAG_BY_FAMILY,
    decode_flow,
    parse_flows,
)
from guestcheck.tcpinfo import TCP_INFO_FIELDS, decode_tcp_info


def _header(family: int) -> bytes:
    return MSG.pack(family, 1, 0, 0, 1, 2, b"\1" * 16, b"\2" * 16, 0, b"\3" * 8, 0, 0, 0, 0, 7)


attribute = st.tuples(st.sampled_from([INET_DIAG_INFO, INET_DIAG_SKMEMINFO, INET_DIAG_CONG, 8, 0, 0x8002, 0xFFFF]),
                      st.binary(max_size=300), st.integers(min_value=-8, max_value=8))


def _attrs(items) -> bytes:
    out = b""
    for kind, payload, skew in items:
        length = max(0, min(0xFFFF, RTA.size + len(payload) + skew))  # a length that lies, now and then
        out += RTA.pack(length, kind) + payload + b"\0" * (-len(payload) % 4)
    return out


def _use(flow) -> None:
    """Everything a caller may read: nothing raises."""
    if flow is None:
        return
    assert isinstance((flow.local, flow.remote, flow.volume(), flow.info_length, flow.cong), tuple)
    info, mem = flow.info, flow.meminfo
    if info is not None:
        assert info.app_limited in (None, True, False)
        for value in info:
            assert value is None or value >= 0
    if mem is not None:
        assert len(mem) == 9


@given(st.sampled_from([socket.AF_INET, socket.AF_INET6, 0, 99]), st.lists(attribute, max_size=6),
       st.integers(min_value=0, max_value=600))
def test_hostile_answers_decode_or_are_skipped(family: int, items, cut: int):
    body = _header(family) + _attrs(items)
    for data in (body, body[:cut]):
        _use(decode_flow(SOCK_DIAG_BY_FAMILY, data))


@given(st.binary(max_size=600))
def test_random_bytes_as_a_body_or_a_buffer_never_raise(data: bytes):
    _use(decode_flow(SOCK_DIAG_BY_FAMILY, data))
    for flow in parse_flows(data):
        _use(flow)
    framed = NLMSG.pack(NLMSG.size + len(data), SOCK_DIAG_BY_FAMILY, 0, 0, 0) + data
    for flow in parse_flows(framed):
        _use(flow)


@given(st.binary(max_size=300))
def test_tcp_info_of_any_length_reads_only_whole_fields(raw: bytes):
    info = decode_tcp_info(raw)
    at = 0
    for (name, code), value in zip(TCP_INFO_FIELDS, info):
        at += struct.calcsize("=" + code)
        assert (value is None) == (at > len(raw)), name


@given(st.lists(st.tuples(st.sampled_from([socket.AF_INET, socket.AF_INET6]), st.lists(attribute, max_size=5)),
                min_size=2, max_size=8))
def test_a_remembered_layout_decodes_each_answer_as_a_walk_from_scratch_does(answers):
    """decode_flow reads answers laid out like the one before at its offsets (rtnetlink.AttributeLayout); every
    answer of a run of hostile ones, some alike and some not, gives what a layout with nothing remembered gives."""
    wanted = {INET_DIAG_INFO: 0, INET_DIAG_SKMEMINFO: 1, INET_DIAG_CONG: 2}
    shared = AttributeLayout(MSG, wanted)
    bodies = [_header(family) + _attrs(items) for family, items in answers]
    bodies += bodies  # the same answers again: now the layout is remembered
    for body in bodies:
        assert shared.decode(body) == AttributeLayout(MSG, wanted).decode(body)
