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


class AttributeLayout:
    """A message's fixed header and the payloads of the attribute types in `wanted` (type -> index in the answer;
    the last of each type wins; None for a type not there; a malformed attribute ends the walk, what came before
    it is kept), read with one struct call while the messages keep one layout.

    A dump answers with thousands of messages built alike: sock_diag gives every connection the same attributes
    of the same lengths. A message of the length of the last one walked, whose attribute headers (length and
    type, at the offsets the walk found) are all the same, has its attributes at those offsets: the walk would
    find nothing else. That is one `unpack_from` and a tuple comparison instead of a Python loop per attribute
    (bench/flows_listing.py). Any other message is walked, and its layout is the one the next is compared with."""

    def __init__(self, fixed: struct.Struct, wanted: Dict[int, int]) -> None:
        self.fixed, self.wanted, self._fields = fixed, wanted, len(fixed.unpack(bytes(fixed.size)))
        self._length = -1  # the last walked message's length (-1: none to compare with)
        self._whole: Optional[struct.Struct] = None  # fixed header + every attribute header, as laid out
        self._headers: Tuple[int, ...] = ()  # their (length, type) values, flat
        self._spans: List[Optional[slice]] = []  # per wanted index: where its payload is

    def decode(self, body: bytes) -> Optional[Tuple[Tuple[int, ...], List[Optional[bytes]]]]:
        """(the fixed header's fields, the wanted payloads by index), None when `body` is shorter than the fixed
        header."""
        if len(body) == self._length and self._whole is not None:
            values = self._whole.unpack_from(body)
            if values[self._fields:] == self._headers:
                return values[:self._fields], [body[s] if s is not None else None for s in self._spans]
        if len(body) < self.fixed.size:
            return None
        return self.fixed.unpack_from(body), self._walk(body)

    def _walk(self, body: bytes) -> List[Optional[bytes]]:
        """The attributes' walk, which also keeps the layout when it reaches the end of `body` cleanly."""
        offset, end = self.fixed.size, len(body)
        spans: List[Optional[slice]] = [None] * len(self.wanted)
        layout, headers, at, whole = [self.fixed.format.lstrip("@=<>!")], [], offset, True
        while at + RTA.size <= end:
            rta_len, rta_type = RTA.unpack_from(body, at)
            if rta_len < RTA.size or at + rta_len > end:
                whole = False  # a malformed attribute ends the walk; such a layout is not kept
                break
            slot = self.wanted.get(rta_type & 0x3FFF)
            if slot is not None:
                spans[slot] = slice(at + RTA.size, at + rta_len)
            layout.append(f"{at - offset}xHH" if at > offset else "HH")
            headers += (rta_len, rta_type)
            offset, at = at + RTA.size, at + align(rta_len)
        if whole:  # every header read: the next message of this length and these headers is laid out alike
            self._length, self._whole, self._headers, self._spans = end, struct.Struct("=" + "".join(layout)), \
                tuple(headers), spans
        else:
            self._length = -1
        return [body[s] if s is not None else None for s in spans]


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
