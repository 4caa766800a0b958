"""Round-trip probes for the latency phase, that never touch the iperf3 port.

Two kinds, both timed from just before the send to the answer's wake-up, on the monotonic clock:
- `tcp-rst`: a TCP connect to a port where nothing listens (the peer's port + 1 unless --probe-port says
  otherwise). The peer's kernel answers the SYN with a RST, so connect() fails with ECONNREFUSED one round trip
  later; no application ever sees it. A port that answers with a SYN-ACK has a listener, whose application would
  see our connections: it is refused as a probe port.
- `udp-echo`: a datagram to `selftest --serve`'s latency echo (guestcheck.selftest.echo), matched by its sequence
  number.

A plain iperf3 server is never disturbed: a connection to its port counts as a failed test, and ends a one-shot
`iperf3 -s -1`. A closed UDP port is no use as a probe: its ICMP answers are rate-limited (about one a second).

The prober sends on a fixed schedule (RATE_PER_S) whatever the answers do, so probes overlap when the queue is
long; a probe unanswered after PROBE_TIMEOUT_S is lost (a SYN's first retransmission comes after 1 s, and would be
timed as if it were a round trip).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from guestcheck.netaddr import bracketed, family_of
from guestcheck.selftest.echo import MAGIC

RATE_PER_S = 25.0  # >= 20 probes a second, as issue 24 asks
PROBE_TIMEOUT_S = 1.0
TCP_RST, UDP_ECHO = "tcp-rst", "udp-echo"
REQUEST_BYTES = 32  # the magic, a sequence number, padding: well under the echo's cap
_SEQ = struct.Struct("!Q")


@dataclass(frozen=True)
class Target:
    method: str  # tcp-rst | udp-echo
    address: str
    port: int

    def describe(self) -> str:
        return f"{self.method} {bracketed(self.address)}:{self.port}"


@dataclass
class Samples:
    """One phase's probes: the round trips answered (ms), and what the others got."""

    rtts_ms: List[float] = field(default_factory=list)
    sent: int = 0
    lost: int = 0  # no answer within PROBE_TIMEOUT_S
    listener: int = 0  # tcp-rst only: a SYN-ACK, something listens on the probe port
    refused: int = 0  # udp-echo only: ICMP port unreachable, nothing listens on the echo port
    errors: int = 0  # any other local failure
    seconds: float = 0.0


class Prober:
    """Probes `target` at `rate` per second, from a thread (start/stop) or in the caller (run_for).

    Each answer is timed by a thread blocked in the kernel for it (connect() with a timeout, which CPython waits
    out with poll() in C; recv() on the echo socket), so the wake-up is the kernel's, not a Python loop's: on a
    veth pair that is the difference between 0.08 ms and 0.15 ms."""

    def __init__(self, target: Target, rate: float = RATE_PER_S, timeout: float = PROBE_TIMEOUT_S) -> None:
        self.target, self.interval, self.timeout = target, 1.0 / rate, timeout
        self.samples = Samples()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._abandon = False  # a port check that has its answer: probes still in flight are not waited for
        self._thread: Optional[threading.Thread] = None
        self._workers: List[threading.Thread] = []
        self._udp: Optional[socket.socket] = None
        self._sent_at: Dict[int, float] = {}  # udp-echo: sequence -> send time
        self._seq = int.from_bytes(os.urandom(4), "big") << 16

    # --- tcp-rst ---------------------------------------------------------------------------------------------
    def _tcp_probe(self) -> None:
        """One connect, in its own thread: blocked until the RST (or SYN-ACK, or the timeout)."""
        try:
            sock = socket.socket(family_of(self.target.address), socket.SOCK_STREAM)
        except OSError:
            with self._lock:
                self.samples.errors += 1
            return
        with sock:
            # no TIME_WAIT, and a SYN-ACK (a listener after all) is answered with a RST, not left a connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.settimeout(self.timeout)
            start = time.monotonic()
            try:
                code = sock.connect_ex((self.target.address, self.target.port))
            except socket.timeout:
                code = errno.ETIMEDOUT
            except OSError as e:
                code = e.errno or -1
            now = time.monotonic()
        with self._lock:
            if code == errno.ECONNREFUSED:
                self.samples.rtts_ms.append((now - start) * 1000)
            elif code == 0:
                self.samples.listener += 1
            elif code in (errno.ETIMEDOUT, errno.EAGAIN, errno.EINPROGRESS, errno.EHOSTUNREACH, errno.ENETUNREACH):
                self.samples.lost += 1
            else:
                self.samples.errors += 1

    # --- udp-echo --------------------------------------------------------------------------------------------
    def _open_udp(self) -> None:
        sock = socket.socket(family_of(self.target.address), socket.SOCK_DGRAM)
        sock.connect((self.target.address, self.target.port))  # only the echo's own address and port get in
        sock.settimeout(0.05)  # the receiver checks the stop flag this often
        self._udp = sock
        receiver = threading.Thread(target=self._udp_receive, name="selftest-latency-echo-reply", daemon=True)
        receiver.start()
        self._workers.append(receiver)

    def _udp_send(self) -> None:
        assert self._udp is not None
        self._seq += 1
        request = MAGIC + _SEQ.pack(self._seq)
        request += b"\0" * (REQUEST_BYTES - len(request))
        with self._lock:
            self._sent_at[self._seq] = time.monotonic()
        try:
            self._udp.send(request)
        except OSError as e:
            with self._lock:
                self._sent_at.pop(self._seq, None)
                self._udp_error(e)

    def _udp_error(self, e: OSError) -> None:
        if e.errno == errno.ECONNREFUSED:
            self.samples.refused += 1
        else:
            self.samples.errors += 1

    def _udp_receive(self) -> None:
        assert self._udp is not None
        sock = self._udp
        while True:
            try:
                data = sock.recv(256)
            except socket.timeout:
                with self._lock:
                    if self._stop.is_set() and (self._abandon or not self._sent_at):
                        return
                    self._expire_udp(time.monotonic())
                continue
            except OSError as e:
                if e.errno == errno.EBADF:
                    return
                with self._lock:
                    self._udp_error(e)
                continue
            now = time.monotonic()
            if len(data) != REQUEST_BYTES or not data.startswith(MAGIC):
                continue
            with self._lock:
                sent = self._sent_at.pop(_SEQ.unpack_from(data, len(MAGIC))[0], None)
                if sent is not None:
                    self.samples.rtts_ms.append((now - sent) * 1000)
                self._expire_udp(now)

    def _expire_udp(self, now: float) -> None:
        """Under the lock: probes unanswered for `timeout` are lost."""
        for seq, sent in list(self._sent_at.items()):
            if now - sent >= self.timeout:
                del self._sent_at[seq]
                self.samples.lost += 1

    # --- the schedule ----------------------------------------------------------------------------------------
    def _answered(self) -> bool:
        with self._lock:
            return bool(self.samples.rtts_ms or self.samples.refused or self.samples.listener)

    def _loop(self, until: Optional[float], first_answer: bool = False) -> None:
        tcp = self.target.method == TCP_RST
        if not tcp and self._udp is None:
            self._open_udp()
        started = time.monotonic()
        next_send = started
        while True:
            now = time.monotonic()
            if until is not None and now >= until:
                break
            if now >= next_send:
                self.samples.sent += 1
                if tcp:
                    worker = threading.Thread(target=self._tcp_probe, name="selftest-latency-probe", daemon=True)
                    worker.start()
                    self._workers = [w for w in self._workers if w.is_alive()] + [worker]
                else:
                    self._udp_send()
                next_send += self.interval
                if next_send < now:  # fell behind (a stalled vCPU): keep the rate, not the backlog of sends
                    next_send = now + self.interval
            wake = next_send if until is None else min(next_send, until)
            if first_answer:  # a port check: done as soon as anything answers
                while time.monotonic() < wake and not self._answered():
                    time.sleep(0.001)
                if self._answered():
                    break
            elif self._stop.wait(max(0.0, wake - time.monotonic())):
                break
        self.samples.seconds += time.monotonic() - started

    def _finish(self) -> Samples:
        """Wait out the probes in flight (each ends by its timeout), then close the echo socket."""
        self._stop.set()
        deadline = time.monotonic() + (0.0 if self._abandon else self.timeout + 1)
        for worker in self._workers:  # each ends by itself within the timeout; abandoned, they are not waited for
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self.samples.lost += len(self._sent_at)
            self._sent_at.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        return self.samples

    def run_for(self, seconds: float, first_answer: bool = False) -> Samples:
        """Probe for `seconds` in this thread (the idle phase); with `first_answer`, only until something
        answers (checking a port)."""
        try:
            self._loop(time.monotonic() + seconds, first_answer)
            self._abandon = first_answer and self._answered()
        finally:
            samples = self._finish()
        return samples

    def start(self) -> Prober:
        self._thread = threading.Thread(target=self._loop, args=(None,), name="selftest-latency-schedule",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> Samples:
        """Stop sending; with `wait`, wait for the probes in flight (each ends by its timeout). A failed run's
        caller does not wait: its probes judge nothing, and a fault is reported at once."""
        self._abandon = not wait
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self._finish()


# --- choosing a probe ---------------------------------------------------------------------------------------------
CHECK_PROBES = 3


@dataclass
class Choice:
    target: Optional[Target]
    tried: List[str] = field(default_factory=list)  # one line per port tried, with what it answered


def _check(target: Target) -> Tuple[bool, str]:
    """Whether `target` answers as a probe must; and what it did, in words."""
    samples = Prober(target, rate=10.0, timeout=0.5).run_for(CHECK_PROBES / 10.0, first_answer=True)
    if target.method == TCP_RST and samples.listener:
        return False, (f"tcp port {target.port} answers with SYN-ACK: an application listens there and would see "
                       "the probes (choose a closed port with --probe-port)")
    if samples.rtts_ms:
        return True, f"{target.describe()} answers"
    if samples.refused:
        return False, f"udp port {target.port}: nothing listens (no `selftest --serve` echo)"
    return False, f"{target.method} port {target.port}: no answer to {samples.sent} probes within 0.5s each"


def choose_target(address: str, iperf3_port: int, probe_port: Optional[int], echo_port: Optional[int]) -> Choice:
    """The first port that answers: --echo-port (or the echo's default port + 1) over UDP, then --probe-port (or
    port + 1) over TCP. A port given alone is tried alone; both given: both, the echo first; --echo-port 0: no echo."""
    default = iperf3_port + 1 if iperf3_port < 65535 else iperf3_port - 1
    candidates: List[Target] = []
    if echo_port != 0 and (echo_port is not None or probe_port is None):  # --echo-port 0: no echo
        candidates.append(Target(UDP_ECHO, address, echo_port or default))
    if probe_port is not None or not echo_port:
        candidates.append(Target(TCP_RST, address, probe_port or default))
    choice = Choice(None)
    for target in candidates:
        if target.method == TCP_RST and target.port == iperf3_port:
            choice.tried.append(f"tcp port {target.port} is the iperf3 port: never probed")
            continue
        ok, said = _check(target)
        choice.tried.append(said)
        if ok:
            choice.target = target
            break
    return choice
