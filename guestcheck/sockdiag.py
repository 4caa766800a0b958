"""Sockets of this network namespace through NETLINK_SOCK_DIAG, decoded with the standard library.

The one reader of inet_diag answers (what `ss` reads): a dump per address family, filtered by TCP state in the
kernel: listening sockets (the ledger) and connections with their tcp_info, buffer use and congestion control
(guestcheck flows). pyroute2 is not used: its DiagSocket took 579 ms for 10,000 sockets here, this one a few
tens of ms (bench/flows_listing.py).

Each answer's fixed struct inet_diag_msg gives the addresses, the state and the two queue figures; for a listening
socket `rqueue` is the accept queue's length now and `wqueue` its limit (the backlog the application asked for,
capped at net.core.somaxconn). Answers are untrusted bytes: a short one is skipped, never an exception.
"""

from __future__ import annotations

import bisect
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

from guestcheck.rtnetlink import dump, messages, pick_attributes

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


ntohs = socket.ntohs


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


# --- TCP connections with their tcp_info and buffer use (guestcheck flows, issue 23) ---

INET_DIAG_INFO, INET_DIAG_CONG, INET_DIAG_SKMEMINFO = 2, 4, 7  # answer attribute types (include/uapi/linux/inet_diag.h)
EXT_WANTED = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_CONG - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1))
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_FIN_WAIT1, TCP_FIN_WAIT2 = 1, 2, 4, 5
TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSING = 8, 9, 11
# The states that carry data and have a full socket (TIME_WAIT and SYN_RECV are mini sockets without tcp_info)
FLOW_STATES = sum(1 << s for s in (TCP_ESTABLISHED, TCP_SYN_SENT, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSE_WAIT,
                                   TCP_LAST_ACK, TCP_CLOSING))
MAX_CONG_NAME = 16  # TCP_CA_NAME_MAX

# struct tcp_info (include/uapi/linux/tcp.h) in the kernel's order, each field's struct code. It only grows, and a
# kernel sends as much of it as it has: a field past the length it gave is None. The layout has no padding (the
# u64 fields fall on multiples of 8), so offsets are the running sum of the sizes.
TCP_INFO_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"), ("backoff", "B"), ("options", "B"),
    ("wscale", "B"),  # snd_wscale:4, rcv_wscale:4
    ("flags", "B"),  # delivery_rate_app_limited:1, fastopen_client_fail:2
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"), ("snd_cwnd", "I"),
    ("advmss", "I"), ("reordering", "I"), ("rcv_rtt", "I"), ("rcv_space", "I"), ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"), ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"),
    ("notsent_bytes", "I"), ("min_rtt", "I"), ("data_segs_in", "I"), ("data_segs_out", "I"),  # 4.6
    ("delivery_rate", "Q"),  # 4.9
    ("busy_time", "Q"), ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"),  # 4.10
    ("delivered", "I"), ("delivered_ce", "I"),  # 4.18
    ("bytes_sent", "Q"), ("bytes_retrans", "Q"), ("dsack_dups", "I"), ("reord_seen", "I"),  # 4.19
    ("rcv_ooopack", "I"),  # 5.4
    ("snd_wnd", "I"),  # 5.4
)


def _offsets(fields: Tuple[Tuple[str, str], ...]) -> List[int]:
    ends, at = [], 0
    for _, code in fields:
        at += struct.calcsize("=" + code)
        ends.append(at)
    return ends


_INFO_ENDS = _offsets(TCP_INFO_FIELDS)
TCP_INFO_SIZE = _INFO_ENDS[-1]  # 232 bytes: what this decoder knows; a newer kernel's longer struct is cut here
# One Struct per number of whole fields a length holds: a short (older) struct decodes in one call too
_INFO_PREFIX = [struct.Struct("=" + "".join(code for _, code in TCP_INFO_FIELDS[:n]))
                for n in range(len(TCP_INFO_FIELDS) + 1)]
_LITTLE = sys.byteorder == "little"


class TcpInfo(NamedTuple):
    """struct tcp_info as the kernel gave it: times in microseconds (rtt, min_rtt, busy_time, rwnd_limited,
    sndbuf_limited, rcv_rtt), rates in bytes per second, counts cumulative since the connection began; None
    past the length an older kernel sent."""

    state: Optional[int] = None
    ca_state: Optional[int] = None
    retransmits: Optional[int] = None
    probes: Optional[int] = None
    backoff: Optional[int] = None
    options: Optional[int] = None
    wscale: Optional[int] = None
    flags: Optional[int] = None
    rto: Optional[int] = None
    ato: Optional[int] = None
    snd_mss: Optional[int] = None
    rcv_mss: Optional[int] = None
    unacked: Optional[int] = None
    sacked: Optional[int] = None
    lost: Optional[int] = None
    retrans: Optional[int] = None
    fackets: Optional[int] = None
    last_data_sent: Optional[int] = None
    last_ack_sent: Optional[int] = None
    last_data_recv: Optional[int] = None
    last_ack_recv: Optional[int] = None
    pmtu: Optional[int] = None
    rcv_ssthresh: Optional[int] = None
    rtt: Optional[int] = None
    rttvar: Optional[int] = None
    snd_ssthresh: Optional[int] = None
    snd_cwnd: Optional[int] = None
    advmss: Optional[int] = None
    reordering: Optional[int] = None
    rcv_rtt: Optional[int] = None
    rcv_space: Optional[int] = None
    total_retrans: Optional[int] = None
    pacing_rate: Optional[int] = None
    max_pacing_rate: Optional[int] = None
    bytes_acked: Optional[int] = None
    bytes_received: Optional[int] = None
    segs_out: Optional[int] = None
    segs_in: Optional[int] = None
    notsent_bytes: Optional[int] = None
    min_rtt: Optional[int] = None
    data_segs_in: Optional[int] = None
    data_segs_out: Optional[int] = None
    delivery_rate: Optional[int] = None
    busy_time: Optional[int] = None
    rwnd_limited: Optional[int] = None
    sndbuf_limited: Optional[int] = None
    delivered: Optional[int] = None
    delivered_ce: Optional[int] = None
    bytes_sent: Optional[int] = None
    bytes_retrans: Optional[int] = None
    dsack_dups: Optional[int] = None
    reord_seen: Optional[int] = None
    rcv_ooopack: Optional[int] = None
    snd_wnd: Optional[int] = None

    @property
    def app_limited(self) -> Optional[bool]:
        """tcpi_delivery_rate_app_limited: the last delivery-rate sample was taken while the sender had less to
        send than the window allowed (a C bit-field: the byte's lowest bit on a little-endian machine)."""
        if self.flags is None:
            return None
        return bool(self.flags & (0x01 if _LITTLE else 0x80))


_NO_INFO = (None,) * len(TCP_INFO_FIELDS)


def decode_tcp_info(raw: bytes) -> TcpInfo:
    """The fields `raw` holds whole; the rest None. Bytes past the fields known here are ignored."""
    n = len(raw)
    if n >= TCP_INFO_SIZE:
        return TcpInfo._make(_INFO_PREFIX[-1].unpack_from(raw))
    whole = bisect.bisect_right(_INFO_ENDS, n)
    return TcpInfo._make(_INFO_PREFIX[whole].unpack_from(raw) + _NO_INFO[whole:])


class SkMemInfo(NamedTuple):
    """INET_DIAG_SKMEMINFO (include/uapi/linux/sock_diag.h, SK_MEMINFO_*): bytes, as `ss -m` prints them as
    skmem:(r,rb,t,tb,f,w,o,bl,d). rmem_alloc is the receive queue's memory against rcvbuf, its limit; wmem_alloc
    is sent-not-yet-freed memory and wmem_queued all queued for sending, against sndbuf. drops is a count."""

    rmem_alloc: Optional[int] = None
    rcvbuf: Optional[int] = None
    wmem_alloc: Optional[int] = None
    sndbuf: Optional[int] = None
    fwd_alloc: Optional[int] = None
    wmem_queued: Optional[int] = None
    optmem: Optional[int] = None
    backlog: Optional[int] = None
    drops: Optional[int] = None


_MEM_FIELDS = len(SkMemInfo._fields)
_MEM_PREFIX = [struct.Struct(f"={n}I") for n in range(_MEM_FIELDS + 1)]
_NO_MEM = (None,) * _MEM_FIELDS


def decode_skmeminfo(raw: bytes) -> SkMemInfo:
    """The fields `raw` holds whole; the rest None. Words past the nine known here are ignored."""
    if len(raw) >= _MEM_FIELDS * 4:
        return SkMemInfo._make(_MEM_PREFIX[-1].unpack_from(raw))
    whole = len(raw) // 4
    return SkMemInfo._make(_MEM_PREFIX[whole].unpack_from(raw) + _NO_MEM[whole:])


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
_VOLUME_AT = _INFO_ENDS[TcpInfo._fields.index("bytes_acked") - 1]


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
        return decode_tcp_info(self.raw_info) if self.raw_info is not None else None

    @property
    def meminfo(self) -> Optional[SkMemInfo]:
        return decode_skmeminfo(self.raw_mem) if self.raw_mem is not None else None

    def volume(self) -> Optional[Tuple[int, int]]:
        """(bytes_acked, bytes_received) without decoding the rest; None when tcp_info is missing or too short."""
        raw = self.raw_info
        if raw is None or len(raw) < _VOLUME_AT + _VOLUME.size:
            return None
        return _VOLUME.unpack_from(raw, _VOLUME_AT)  # type: ignore[return-value]


_INDEX = {INET_DIAG_INFO: 0, INET_DIAG_SKMEMINFO: 1, INET_DIAG_CONG: 2}


def decode_flow(msg_type: int, body: bytes) -> Optional[TcpFlow]:
    """One SOCK_DIAG_BY_FAMILY answer with its attributes; None when it is short, of another type or family.
    A malformed attribute ends the walk (rtnetlink.pick_attributes): what came before it is kept."""
    if msg_type != SOCK_DIAG_BY_FAMILY or len(body) < MSG.size:
        return None
    (family, state, _, _, sport, dport, src, dst, _, cookie, _, rqueue, wqueue, _, inode) = MSG.unpack_from(body)
    name = FAMILIES.get(family)
    if name is None:
        return None
    raw_info, raw_mem, raw_cong = pick_attributes(body, MSG.size, _INDEX)
    return TcpFlow(name, state, src, ntohs(sport), dst, ntohs(dport), rqueue,
                   wqueue, inode, int.from_bytes(cookie, sys.byteorder), raw_info, raw_mem,
                   decode_cong(raw_cong) if raw_cong is not None else None)


def parse_flows(data: bytes) -> List[TcpFlow]:
    """The connections in a buffer of answers (a recv()'s worth)."""
    return [f for f in (decode_flow(t, b) for t, b in messages(data)) if f is not None]


def tcp_flows(states: int = FLOW_STATES) -> List[TcpFlow]:
    """Every TCP connection of this network namespace in `states`, IPv4 and IPv6, with tcp_info, SKMEMINFO and
    the congestion control. Raises OSError when the kernel refuses."""
    out: List[TcpFlow] = []
    for family in FAMILIES:
        request = REQUEST.pack(family, socket.IPPROTO_TCP, EXT_WANTED, states, b"\0" * 48)
        for kind, body in dump(SOCK_DIAG_BY_FAMILY, request, protocol=NETLINK_SOCK_DIAG):
            flow = decode_flow(kind, body)
            if flow is not None:
                out.append(flow)
    return out
