"""rtnetlink with the standard library: the one framing of netlink messages and their attributes, and a dump
request, for the few answers doctor and watch need without importing pyroute2 (200-470 ms at boot).

Everything the kernel sends is parsed defensively: a truncated or malformed message ends the walk, never an
exception.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Dict, Iterator, List, Optional, Tuple

NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
RTA = struct.Struct("=HH")  # len, type
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
MAX_DUMP_BYTES = 64 << 20  # a neighbour table larger than this is cut off: the walk is bounded


def align(n: int) -> int:
    return (n + 3) & ~3


def messages(data: bytes) -> Iterator[Tuple[int, bytes]]:
    """(message type, body) for each whole message in `data`."""
    offset = 0
    while offset + NLMSG.size <= len(data):
        length, msg_type, _, _, _ = NLMSG.unpack_from(data, offset)
        if length < NLMSG.size or offset + length > len(data):
            return
        yield msg_type, data[offset + NLMSG.size: offset + length]
        offset += align(length)


def attributes(body: bytes, offset: int) -> Iterator[Tuple[int, bytes]]:
    """(attribute type, payload) from `offset` (the end of the fixed header) to the end of `body`."""
    at = offset
    while at + RTA.size <= len(body):
        rta_len, rta_type = RTA.unpack_from(body, at)
        if rta_len < RTA.size or at + rta_len > len(body):
            return
        yield rta_type & 0x3FFF, body[at + RTA.size: at + rta_len]  # without NLA_F_NESTED / NET_BYTEORDER
        at += align(rta_len)


def pick_attributes(body: bytes, offset: int, wanted: Dict[int, int]) -> List[Optional[bytes]]:
    """The payloads of the attribute types in `wanted` (type -> index in the answer; the last of each type wins),
    from `offset` to the end of `body`, None for a type not there: the walk of `attributes`, without a
    generator, copying only what is wanted (sock_diag's answers for 10,000 connections in a few ms)."""
    out: List[Optional[bytes]] = [None] * len(wanted)
    at, end, unpack, index = offset, len(body) - RTA.size, RTA.unpack_from, wanted.get
    while at <= end:
        rta_len, rta_type = unpack(body, at)
        if rta_len < 4 or at + rta_len > end + 4:
            break
        slot = index(rta_type & 0x3FFF)
        if slot is not None:
            out[slot] = body[at + 4: at + rta_len]
        at += (rta_len + 3) & ~3
    return out


def dump(msg_type: int, header: bytes, timeout: float = 2.0,
         protocol: int = socket.NETLINK_ROUTE) -> List[Tuple[int, bytes]]:
    """A dump request (RTM_GETNEIGH, ..., or SOCK_DIAG_BY_FAMILY with `protocol` NETLINK_SOCK_DIAG) with its fixed
    header; every answer's (type, body) until NLMSG_DONE. Raises OSError when the kernel refuses or does not
    answer in `timeout` seconds."""
    seq = int.from_bytes(os.urandom(4), "little") or 1
    request = NLMSG.pack(NLMSG.size + len(header), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + header
    out: List[Tuple[int, bytes]] = []
    received = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol) as s:
        s.settimeout(timeout)
        s.sendto(request, (0, 0))
        while received < MAX_DUMP_BYTES:
            data = s.recv(1 << 16)
            if not data:
                break
            received += len(data)
            for kind, body in messages(data):
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    continue
                out.append((kind, body))
    return out
