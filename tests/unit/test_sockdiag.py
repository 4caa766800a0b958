"""sockdiag.py: inet_diag answers decoded (a listener's queue and backlog), hostile bytes skipped."""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st

from guestcheck.sockdiag import MSG, SOCK_DIAG_BY_FAMILY, decode, listeners, parse_diag


def answer(family: int = socket.AF_INET, port: int = 8080, rqueue: int = 2, wqueue: int = 1) -> bytes:
    text = "fd00::1" if family == socket.AF_INET6 else "10.0.0.1"
    src = socket.inet_pton(socket.AF_INET6 if family == socket.AF_INET6 else socket.AF_INET, text).ljust(16, b"\0")
    return MSG.pack(family, 10, 0, 0, socket.htons(port), 0, src, b"\0" * 16, 0, b"\0" * 8, 0, rqueue, wqueue, 0,
                    77)


def test_a_listener_answer_gives_its_address_queue_and_backlog():
    s = decode(SOCK_DIAG_BY_FAMILY, answer())
    assert (s.family, s.local, s.local_port, s.rqueue, s.wqueue, s.inode) == ("ipv4", "10.0.0.1", 8080, 2, 1, 77)
    assert decode(SOCK_DIAG_BY_FAMILY, answer(socket.AF_INET6)).local == "fd00::1"


def test_short_foreign_or_other_family_answers_are_skipped():
    assert decode(SOCK_DIAG_BY_FAMILY, answer()[:40]) is None
    assert decode(3, answer()) is None
    assert decode(SOCK_DIAG_BY_FAMILY, answer(family=99)) is None


@given(st.binary(max_size=400))
def test_random_buffers_never_raise(data: bytes):
    parse_diag(data)
    decode(SOCK_DIAG_BY_FAMILY, data)


def test_this_process_s_listener_is_listed_with_its_backlog():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(3)
        port = s.getsockname()[1]
        mine = [x for x in listeners() if x.local_port == port and x.local == "127.0.0.1"]
        assert [(x.state, x.rqueue, x.wqueue) for x in mine] == [(10, 0, 3)]
