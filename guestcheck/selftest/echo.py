"""The latency echo of `selftest --serve`: a UDP port of its own that sends back what a selftest client sends it.

Why not the iperf3 port: a connection to it counts as a failed test (a one-shot `iperf3 -s -1` refuses the next
run, a persistent server logs an error), and a UDP socket on it breaks `iperf3 -u` ("Address already in use").
So the echo listens on UDP port P + 1 by default, next to iperf3's TCP P, and --serve names it in its first line.

It is open to the network for as long as --serve runs, so it is built not to be useful to anyone else:
- it answers only requests that start with MAGIC, of MIN_BYTES to MAX_BYTES (a longer datagram is never echoed,
  and a truncated read is dropped, not echoed cut);
- the reply is the request itself, byte for byte: never larger, so it amplifies nothing;
- per source address (whatever its port) at most PER_SOURCE_PPS a second with a burst of PER_SOURCE_BURST, and at
  most TOTAL_PPS for all sources together; MAX_SOURCES are remembered, the longest idle forgotten first;
- it answers only on the address it is bound to: `--bind ADDR` binds it there; without it, each reply leaves from
  the address the request came to (IP_PKTINFO / IPV6_PKTINFO), never from another one of the machine's.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from guestcheck.netaddr import family_of

MAGIC = b"GCE1"
MIN_BYTES = len(MAGIC) + 8  # the magic and the client's sequence number
MAX_BYTES = 64
PER_SOURCE_PPS = 60.0  # a client probes at 25/s: room for two at once from one address, no more
PER_SOURCE_BURST = 10.0
TOTAL_PPS = 1000.0
TOTAL_BURST = 100.0
MAX_SOURCES = 1024
IP_PKTINFO = 8  # linux/in.h; the socket module of Python 3.11 does not name it
POLL_SECONDS = 0.2


def is_request(data: bytes, truncated: bool = False) -> bool:
    """A datagram the echo may answer: ours (MAGIC), whole, and within the size cap."""
    return not truncated and MIN_BYTES <= len(data) <= MAX_BYTES and data.startswith(MAGIC)


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class EchoGate:
    """The caps, as a pure function of (source, time): whether this request may be answered now."""

    per_source_pps: float = PER_SOURCE_PPS
    per_source_burst: float = PER_SOURCE_BURST
    total_pps: float = TOTAL_PPS
    total_burst: float = TOTAL_BURST
    max_sources: int = MAX_SOURCES
    sources: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)
    total: Optional[_Bucket] = None
    counts: Dict[str, int] = field(default_factory=lambda: {"answered": 0, "not_ours": 0, "source_limit": 0,
                                                            "total_limit": 0})

    @staticmethod
    def _take(bucket: _Bucket, rate: float, burst: float, now: float) -> bool:
        bucket.tokens = min(burst, bucket.tokens + max(0.0, now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def admit(self, source: str, now: float) -> bool:
        bucket = self.sources.pop(source, None)
        if bucket is None:
            bucket = _Bucket(self.per_source_burst, now)
            while len(self.sources) >= self.max_sources:
                self.sources.popitem(last=False)  # the longest idle (the order is that of the last request)
        self.sources[source] = bucket
        if not self._take(bucket, self.per_source_pps, self.per_source_burst, now):
            self.counts["source_limit"] += 1
            return False
        if self.total is None:
            self.total = _Bucket(self.total_burst, now)
        if not self._take(self.total, self.total_pps, self.total_burst, now):
            self.counts["total_limit"] += 1
            return False
        self.counts["answered"] += 1
        return True

    def answer(self, data: bytes, source: str, now: float, truncated: bool = False) -> Optional[bytes]:
        """The reply to one datagram (the request itself), or None to stay silent."""
        if not is_request(data, truncated):
            self.counts["not_ours"] += 1
            return None
        return data if self.admit(source, now) else None


def _pktinfo_reply(family: int, ancdata: List[Tuple[int, int, bytes]]) -> List[Tuple[int, int, bytes]]:
    """The ancillary data that makes a reply leave from the address the request came to."""
    for level, kind, data in ancdata:
        if family == socket.AF_INET and level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            _ifindex, _spec, dst = struct.unpack_from("=I4s4s", data)
            return [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=I4s4s", 0, dst, b"\0" * 4))]
        if family == socket.AF_INET6 and level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO \
                and len(data) >= 20:
            dst = data[:16]
            return [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("=16sI", dst, 0))]
    return []


def _open(family: int, address: str, port: int, wildcard: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if wildcard:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        elif wildcard:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class UdpEcho:
    """The echo's sockets and the thread that serves them; `close()` stops both."""

    def __init__(self, bind: Optional[str], port: int, gate: Optional[EchoGate] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.port, self.gate, self.clock = port, gate or EchoGate(), clock
        self.sockets: List[socket.socket] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        try:
            if bind:
                self.sockets.append(_open(family_of(bind), bind, port, wildcard=False))
            else:
                self.sockets.append(_open(socket.AF_INET, "0.0.0.0", port, wildcard=True))
                with contextlib.suppress(OSError):  # a machine without IPv6 serves IPv4 only
                    self.sockets.append(_open(socket.AF_INET6, "::", port, wildcard=True))
        except OSError:
            self.close()
            raise

    def start(self) -> UdpEcho:
        self._thread = threading.Thread(target=self._serve, name="selftest-latency-echo", daemon=True)
        self._thread.start()
        return self

    def serve_once(self, sock: socket.socket) -> None:
        """Read every datagram waiting on `sock` and answer those the gate lets through."""
        wildcard = len(self.sockets) > 1 or sock.getsockname()[0] in ("0.0.0.0", "::")
        for _ in range(256):  # bounded: the loop returns to check the stop flag
            try:
                data, ancdata, flags, source = sock.recvmsg(MAX_BYTES + 1, 256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error queued for an earlier reply: nothing to answer
                continue
            truncated = bool(flags & socket.MSG_TRUNC)
            reply = self.gate.answer(data, str(source[0]), self.clock(), truncated)
            if reply is None:
                continue
            control = _pktinfo_reply(sock.family, ancdata) if wildcard else []
            if wildcard and not control:
                continue  # the kernel did not say where it arrived: stay silent rather than answer from elsewhere
            with contextlib.suppress(OSError):
                sock.sendmsg([reply], control, 0, source)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(self.sockets, [], [], POLL_SECONDS)
            except (OSError, ValueError):  # closed under us
                return
            for sock in ready:
                self.serve_once(sock)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for sock in self.sockets:
            sock.close()
        self.sockets = []
