"""struct tcp_info and INET_DIAG_SKMEMINFO, decoded with the standard library: the payloads of the attributes a
sock_diag answer carries (guestcheck/sockdiag.py walks the answers). Apart so that a reading that decodes no
connection (doctor --sample 0, a machine of idle connections) does not build these records at start-up: sockdiag
imports this module on the first connection it decodes."""

from __future__ import annotations

import bisect
import struct
import sys
from typing import List, NamedTuple, Optional, Tuple

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
