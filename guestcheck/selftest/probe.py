"""A TCP connect round-trip sample of our own, next to iperf3's smoothed RTT under load.

The time from SYN to the peer's answer is one round trip through both kernels whether the answer is a
SYN-ACK (something listens) or a RST (nothing does any more, e.g. a `--once` server that has exited), so
both count. It runs after the iperf3 runs: a bare connection makes an iperf3 server drop it as a failed
test, which would end an `iperf3 -s -1` server before the real test.
"""

from __future__ import annotations

import errno
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

from guestcheck.netaddr import family_of

ANSWERED = {0: "syn-ack", errno.ECONNREFUSED: "rst"}
TIMED_OUT = "timed out"


@dataclass
class ConnectRtt:
    samples_ms: list[float] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)  # "syn-ack" or "rst", one per sample

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    def to_dict(self) -> dict:
        return {"samples_ms": [round(s, 3) for s in self.samples_ms], "answers": self.answers,
                "min_ms": round(self.min_ms, 3), "median_ms": round(self.median_ms, 3)}


def connect_once(address: str, port: int, timeout: float) -> tuple[Optional[float], str]:
    """(milliseconds, answer) or (None, reason) when the peer did not answer."""
    with socket.socket(family_of(address), socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        start = time.perf_counter()
        try:
            code = sock.connect_ex((address, port))
        except socket.timeout:  # TimeoutError from 3.10 on; not errno-based before
            return None, TIMED_OUT
        except OSError as e:
            return None, e.strerror or str(e)
        elapsed = (time.perf_counter() - start) * 1000
    if code in ANSWERED:
        return elapsed, ANSWERED[code]
    if code in (errno.ETIMEDOUT, errno.EAGAIN, errno.EINPROGRESS):
        return None, TIMED_OUT
    return None, errno.errorcode.get(code, str(code))


def connect_rtt(address: str, port: int, *, samples: int = 3, timeout: float = 2.0) -> Optional[ConnectRtt]:
    """Up to `samples` connect round trips; None when the peer answered none of them.

    A silence (timeout) ends the probe: a silent peer would cost `timeout` per sample. Any other miss
    (a peer server restarting between tests, a transient local error) is retried, within 2x `samples`
    attempts, so one unlucky moment does not cost a sample."""
    out = ConnectRtt()
    for _ in range(2 * samples):
        if len(out.samples_ms) == samples:
            break
        ms, answer = connect_once(address, port, timeout)
        if ms is None:
            if answer == TIMED_OUT:
                break
            continue
        out.samples_ms.append(ms)
        out.answers.append(answer)
    return out if out.samples_ms else None
