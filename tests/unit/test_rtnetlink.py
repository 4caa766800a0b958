"""guestcheck/rtnetlink.py: the one framing of rtnetlink messages, defensive on what the kernel sends."""

from __future__ import annotations

from guestcheck.rtnetlink import NLMSG, RTA, attributes, dump, messages


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
