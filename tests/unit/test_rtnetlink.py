"""guestcheck/rtnetlink.py: the one framing of rtnetlink messages, defensive on what the kernel sends."""

from __future__ import annotations

import struct

from guestcheck.rtnetlink import NLMSG, RTA, AttributeLayout, attributes, dump, messages


def _message(msg_type: int, body: bytes) -> bytes:
    return NLMSG.pack(NLMSG.size + len(body), msg_type, 0, 1, 0) + body + b"\0" * (-len(body) % 4)


def test_messages_and_attributes_walk_whole_ones_and_stop_at_a_truncated_one():
    attr = RTA.pack(RTA.size + 3, 3) + b"ab\0" + b"\0"
    data = _message(16, b"\0" * 16 + attr) + _message(28, b"x" * 8)
    assert [(t, len(b)) for t, b in messages(data)] == [(16, 24), (28, 8)]
    (_, body), _ = messages(data)
    assert list(attributes(body, 16)) == [(3, b"ab\0")]
    assert list(messages(data[:-3])) == [(16, body)]  # the second message is cut: left out
    assert list(attributes(body[:-3], 16)) == []  # an attribute longer than what is left: the walk ends
    assert list(messages(NLMSG.pack(2, 16, 0, 0, 0))) == []  # a length below the header's


def test_a_dump_of_this_namespaces_links_answers():
    """RTM_GETLINK needs no privilege: the dump ends with NLMSG_DONE and lists loopback at least."""
    answers = dump(18, b"\0" * 16)
    assert answers and {t for t, _ in answers} == {16}


def _layout_reference(body: bytes, wanted):
    """What a walk from scratch gives: a new AttributeLayout has no layout to compare with."""
    return AttributeLayout(FIXED, wanted).decode(body)


FIXED = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    return RTA.pack(RTA.size + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def test_a_layout_read_at_the_remembered_offsets_only_when_every_header_is_the_same():
    wanted = {2: 0, 7: 1}
    layout = AttributeLayout(FIXED, wanted)
    first = FIXED.pack(1, 2) + _attr(8, b"\1") + _attr(2, b"info") + _attr(7, b"mem!")
    assert layout.decode(first) == ((1, 2), [b"info", b"mem!"])
    alike = FIXED.pack(3, 4) + _attr(8, b"\2") + _attr(2, b"INFO") + _attr(7, b"MEM?")
    assert layout.decode(alike) == ((3, 4), [b"INFO", b"MEM?"])  # the remembered layout
    # the same length, the attributes swapped: the headers differ, so it is walked
    swapped = FIXED.pack(5, 6) + _attr(8, b"\3") + _attr(7, b"mem2") + _attr(2, b"inf2")
    assert layout.decode(swapped) == ((5, 6), [b"inf2", b"mem2"]) == _layout_reference(swapped, wanted)
    # the same length, shorter payloads within the same padding: the attribute lengths differ, so it is walked
    shifted = FIXED.pack(7, 8) + _attr(8, b"\4") + _attr(2, b"in") + _attr(7, b"mm")
    assert len(shifted) == len(first) and layout.decode(shifted) == ((7, 8), [b"in", b"mm"])
    assert layout.decode(b"\1") is None  # shorter than the fixed header


def test_a_malformed_layout_is_not_remembered():
    wanted = {2: 0}
    layout = AttributeLayout(FIXED, wanted)
    bad = FIXED.pack(1, 1) + _attr(2, b"good") + RTA.pack(200, 2) + b"xxxx"  # the second attribute overruns
    assert layout.decode(bad) == ((1, 1), [b"good"])
    again = FIXED.pack(2, 2) + _attr(2, b"GOOD") + RTA.pack(200, 2) + b"yyyy"
    assert layout.decode(again) == ((2, 2), [b"GOOD"]) == _layout_reference(again, wanted)
