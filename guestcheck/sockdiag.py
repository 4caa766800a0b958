"""Sockets of this network namespace through NETLINK_SOCK_DIAG, decoded with the standard library.

The one reader of inet_diag answers (what `ss` reads): a dump per address family, filtered by TCP state in the
kernel. Each answer's fixed struct inet_diag_msg gives the addresses, the state and the two queue figures; for a
listening socket `rqueue` is the accept queue's length now and `wqueue` its limit (the backlog the application
asked for, capped at net.core.somaxconn). Answers are untrusted bytes: a short one is skipped, never an exception.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import List, Optional

from guestcheck.rtnetlink import dump, messages

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
TCP_LISTEN = 10
REQUEST = struct.Struct("=BBBxI48s")  # family, protocol, ext, pad, states, inet_diag_sockid
MSG = struct.Struct("=BBBBHH16s16sI8sIIIII")  # inet_diag_msg: 72 bytes
FAMILIES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}


@dataclass(frozen=True)
class DiagSocket:
    """One socket as inet_diag_msg describes it."""

    family: str  # ipv4 | ipv6
    state: int
    local: str
    local_port: int
    remote: str
    remote_port: int
    rqueue: int
    wqueue: int
    inode: int


def _address(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)


def decode(msg_type: int, body: bytes) -> Optional[DiagSocket]:
    """One SOCK_DIAG_BY_FAMILY answer; None when it is short, of another type or of another family."""
    if msg_type != SOCK_DIAG_BY_FAMILY or len(body) < MSG.size:
        return None
    (family, state, _, _, sport, dport, src, dst, _, _, _, rqueue, wqueue, _, inode) = MSG.unpack_from(body)
    if family not in FAMILIES:
        return None
    return DiagSocket(FAMILIES[family], state, _address(family, src), socket.ntohs(sport),
                      _address(family, dst), socket.ntohs(dport), rqueue, wqueue, inode)


def parse_diag(data: bytes) -> List[DiagSocket]:
    """The sockets in a buffer of answers (a recv()'s worth)."""
    return [s for s in (decode(t, b) for t, b in messages(data)) if s is not None]


def tcp_sockets(states: int) -> List[DiagSocket]:
    """TCP sockets in the states of the bit mask `states` (1 << TCP_LISTEN ...), IPv4 and IPv6.
    Raises OSError when the kernel refuses."""
    out = []
    for family in FAMILIES:
        request = REQUEST.pack(family, socket.IPPROTO_TCP, 0, states, b"\0" * 48)
        answers = dump(SOCK_DIAG_BY_FAMILY, request, protocol=NETLINK_SOCK_DIAG)
        out.extend(s for s in (decode(t, b) for t, b in answers) if s is not None)
    return out


def listeners() -> List[DiagSocket]:
    return tcp_sockets(1 << TCP_LISTEN)
