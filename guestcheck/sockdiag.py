"""Sockets of this network namespace through NETLINK_SOCK_DIAG, decoded with the standard library.

The one reader of inet_diag answers (what `ss` reads): one dump of both address families (one per family on a
kernel without the old request), filtered by TCP state in the kernel: listening sockets (the ledger) and
connections with their tcp_info, buffer use and congestion control (guestcheck flows; guestcheck/tcpinfo.py
decodes those payloads). pyroute2 is not used: its DiagSocket took 579 ms for 10,000 sockets here, this one a few
tens of ms (bench/flows_listing.py).

Each answer's fixed struct inet_diag_msg gives the addresses, the state and the two queue figures; for a listening
socket `rqueue` is the accept queue's length now and `wqueue` its limit (the backlog the application asked for,
capped at net.core.somaxconn). Answers are untrusted bytes: a short one is skipped, never an exception.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Tuple

from guestcheck.rtnetlink import AttributeLayout, dump, messages

if TYPE_CHECKING:
    from guestcheck.tcpinfo import SkMemInfo, TcpInfo

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
TCP_LISTEN = 10
TCPDIAG_GETSOCK = 18  # the request before SOCK_DIAG_BY_FAMILY: TCP sockets of both families in one dump
REQUEST = struct.Struct("=BBBxI48s")  # family, protocol, ext, pad, states, inet_diag_sockid
COMPAT_REQUEST = struct.Struct("=BBBB48sII")  # struct inet_diag_req: family, src_len, dst_len, ext, sockid, states, dbs
ANSWERS = (SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK)  # an answer carries its request's type
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


ntohs = socket.ntohs


def _address(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)


def decode(msg_type: int, body: bytes) -> Optional[DiagSocket]:
    """One SOCK_DIAG_BY_FAMILY answer; None when it is short, of another type or of another family."""
    if msg_type not in ANSWERS or len(body) < MSG.size:
        return None
    (family, state, _, _, sport, dport, src, dst, _, _, _, rqueue, wqueue, _, inode) = MSG.unpack_from(body)
    if family not in FAMILIES:
        return None
    return DiagSocket(FAMILIES[family], state, _address(family, src), socket.ntohs(sport),
                      _address(family, dst), socket.ntohs(dport), rqueue, wqueue, inode)


def parse_diag(data: bytes) -> List[DiagSocket]:
    """The sockets in a buffer of answers (a recv()'s worth)."""
    return [s for s in (decode(t, b) for t, b in messages(data)) if s is not None]


def tcp_dump(states: int, ext: int = 0) -> List[Tuple[int, bytes]]:
    """Every answer for the TCP sockets in the states of the bit mask `states` (1 << TCP_LISTEN ...), IPv4 and
    IPv6, with the attributes `ext` asks for. One dump of both families (TCPDIAG_GETSOCK, the request `ss` once
    sent: the kernel walks its connection table once, and the walk costs about 2 ms here even when it is empty),
    or one SOCK_DIAG_BY_FAMILY dump per family when the kernel refuses that request. Raises OSError when the
    kernel refuses both."""
    try:
        return dump(TCPDIAG_GETSOCK, COMPAT_REQUEST.pack(socket.AF_UNSPEC, 0, 0, ext, b"\0" * 48, states, 0),
                    protocol=NETLINK_SOCK_DIAG)
    except OSError:
        pass  # a kernel without the old request: the newer one, per family
    out: List[Tuple[int, bytes]] = []
    for family in FAMILIES:
        request = REQUEST.pack(family, socket.IPPROTO_TCP, ext, states, b"\0" * 48)
        out.extend(dump(SOCK_DIAG_BY_FAMILY, request, protocol=NETLINK_SOCK_DIAG))
    return out


def tcp_sockets(states: int) -> List[DiagSocket]:
    """TCP sockets in the states of the bit mask `states` (1 << TCP_LISTEN ...), IPv4 and IPv6.
    Raises OSError when the kernel refuses."""
    return [s for s in (decode(t, b) for t, b in tcp_dump(states)) if s is not None]


def listeners() -> List[DiagSocket]:
    return tcp_sockets(1 << TCP_LISTEN)


# --- TCP connections with their tcp_info and buffer use (guestcheck flows, issue 23) ---

INET_DIAG_INFO, INET_DIAG_CONG, INET_DIAG_SKMEMINFO = 2, 4, 7  # answer attribute types (include/uapi/linux/inet_diag.h)
EXT_WANTED = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_CONG - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1))
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_FIN_WAIT1, TCP_FIN_WAIT2 = 1, 2, 4, 5
TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSING = 8, 9, 11
# The states that carry data and have a full socket (TIME_WAIT and SYN_RECV are mini sockets without tcp_info)
FLOW_STATES = sum(1 << s for s in (TCP_ESTABLISHED, TCP_SYN_SENT, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSE_WAIT,
                                   TCP_LAST_ACK, TCP_CLOSING))
MAX_CONG_NAME = 16  # TCP_CA_NAME_MAX

_CONG_NAMES: Dict[bytes, str] = {}  # a machine has a handful: decoded once each


def decode_cong(raw: bytes) -> str:
    """The congestion control's name: a C string, untrusted; what is not printable ASCII is replaced."""
    known = _CONG_NAMES.get(raw)
    if known is not None:
        return known
    name = raw.split(b"\0", 1)[0][:MAX_CONG_NAME].decode("ascii", "replace")
    name = "".join(c if c.isprintable() and c.isascii() else "?" for c in name)
    if len(_CONG_NAMES) < 64:
        _CONG_NAMES[raw] = name
    return name


_VOLUME = struct.Struct("=QQ")  # tcpi_bytes_acked, tcpi_bytes_received
_VOLUME_AT = 120  # their offset in struct tcp_info (since 4.1; tests/unit/test_sockdiag.py checks it against tcpinfo)


class TcpFlow(NamedTuple):
    """One TCP connection: inet_diag_msg's addresses and queues, and the attributes asked for (None when the
    kernel sent none). `cookie` is the kernel's socket cookie: it names the same connection in two readings.

    Addresses, tcp_info and SKMEMINFO are kept as the kernel's bytes, decoded by `local`, `remote`, `info` and
    `meminfo` (each call decodes: keep the result): a listing of 10,000 idle connections needs only each one's
    byte counts (`volume`), and decoding every field of every one would cost more than `ss -tin` takes."""

    family: str  # ipv4 | ipv6 (an IPv4 peer of an IPv6 socket shows as ::ffff:a.b.c.d)
    state: int
    raw_local: bytes  # idiag_src, 16 bytes (an IPv4 address in the first 4): `local` is its text
    local_port: int
    raw_remote: bytes
    remote_port: int
    rqueue: int  # bytes received, not yet read by the application
    wqueue: int  # bytes sent, not yet acknowledged
    inode: int
    cookie: int
    raw_info: Optional[bytes]  # INET_DIAG_INFO's payload, as long as the kernel sent it
    raw_mem: Optional[bytes]  # INET_DIAG_SKMEMINFO's
    cong: Optional[str]  # INET_DIAG_CONG: the congestion control's name

    @property
    def local(self) -> str:
        return _address(socket.AF_INET if self.family == "ipv4" else socket.AF_INET6, self.raw_local)

    @property
    def remote(self) -> str:
        return _address(socket.AF_INET if self.family == "ipv4" else socket.AF_INET6, self.raw_remote)

    @property
    def info_length(self) -> int:
        """The bytes of struct tcp_info the kernel sent (0: none)."""
        return len(self.raw_info) if self.raw_info is not None else 0

    @property
    def info(self) -> Optional[TcpInfo]:
        if self.raw_info is None:
            return None
        from guestcheck.tcpinfo import decode_tcp_info

        return decode_tcp_info(self.raw_info)

    @property
    def meminfo(self) -> Optional[SkMemInfo]:
        if self.raw_mem is None:
            return None
        from guestcheck.tcpinfo import decode_skmeminfo

        return decode_skmeminfo(self.raw_mem)

    def volume(self) -> Optional[Tuple[int, int]]:
        """(bytes_acked, bytes_received) without decoding the rest; None when tcp_info is missing or too short."""
        raw = self.raw_info
        if raw is None or len(raw) < _VOLUME_AT + _VOLUME.size:
            return None
        return _VOLUME.unpack_from(raw, _VOLUME_AT)  # type: ignore[return-value]


_LAYOUT = AttributeLayout(MSG, {INET_DIAG_INFO: 0, INET_DIAG_SKMEMINFO: 1, INET_DIAG_CONG: 2})


def decode_flow(msg_type: int, body: bytes) -> Optional[TcpFlow]:
    """One SOCK_DIAG_BY_FAMILY answer with its attributes; None when it is short, of another type or family.
    A malformed attribute ends the walk (rtnetlink.AttributeLayout): what came before it is kept."""
    if msg_type not in ANSWERS:
        return None
    decoded = _LAYOUT.decode(body)
    if decoded is None:
        return None
    (family, state, _, _, sport, dport, src, dst, _, cookie, _, rqueue, wqueue, _, inode), attrs = decoded
    name = FAMILIES.get(family)
    if name is None:
        return None
    raw_info, raw_mem, raw_cong = attrs
    return TcpFlow(name, state, src, ntohs(sport), dst, ntohs(dport), rqueue,
                   wqueue, inode, int.from_bytes(cookie, sys.byteorder), raw_info, raw_mem,
                   decode_cong(raw_cong) if raw_cong is not None else None)


def parse_flows(data: bytes) -> List[TcpFlow]:
    """The connections in a buffer of answers (a recv()'s worth)."""
    return [f for f in (decode_flow(t, b) for t, b in messages(data)) if f is not None]


def tcp_flows(states: int = FLOW_STATES) -> List[TcpFlow]:
    """Every TCP connection of this network namespace in `states`, IPv4 and IPv6, with tcp_info, SKMEMINFO and
    the congestion control. Raises OSError when the kernel refuses."""
    return [f for f in (decode_flow(t, b) for t, b in tcp_dump(states, EXT_WANTED)) if f is not None]


def tcp_reading() -> Tuple[List[DiagSocket], List[TcpFlow]]:
    """(listening sockets, connections) from one dump: what a counter reading takes (the ledger's listeners,
    guestcheck flows' connections), for one walk of the kernel's tables. Raises OSError when the kernel refuses."""
    listening: List[DiagSocket] = []
    flows: List[TcpFlow] = []
    for kind, body in tcp_dump(FLOW_STATES | (1 << TCP_LISTEN), EXT_WANTED):
        if len(body) > 1 and body[1] == TCP_LISTEN:
            found = decode(kind, body)
            if found is not None:
                listening.append(found)
        else:
            flow = decode_flow(kind, body)
            if flow is not None:
                flows.append(flow)
    return listening, flows
