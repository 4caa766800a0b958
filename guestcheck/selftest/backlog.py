"""Where the queue is: every qdisc's backlog, read before, during and after each run.

doctor's ledger reads the qdiscs twice, at the ends of its window; a queue that fills during a transfer and drains
when it stops is seen by neither reading. So selftest reads the same dump (guestcheck.collect.tc.read_tc, the one
tc decoder: a raw netlink dump costing well under a millisecond) every INTERVAL_S while iperf3 runs, next to the
latency probes, and keeps each qdisc's backlog in bytes with its rate and limit. Only this machine's network
namespace is visible: a queue on the peer, the host or a router shows as "no qdisc here grew".
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from guestcheck.collect.counters import counter_delta
from guestcheck.collect.tc import TcObject, TcReading, read_tc, tc_handle, tc_parent

INTERVAL_S = 0.025
Key = Tuple[int, str, int, int]


@dataclass
class QueueTrace:
    """One qdisc over one run: its backlog before, at every reading during, and after."""

    device: str
    kind: str
    handle: str
    parent: str
    rate_bytes_per_s: Optional[int]
    limit: Optional[int]
    limit_unit: str
    burst_bytes: Optional[int]
    before_bytes: int
    during_bytes: List[int] = field(default_factory=list)
    after_bytes: int = 0
    drops: Optional[int] = None  # the rise over the run

    def to_dict(self) -> Dict[str, object]:
        return {"device": self.device, "kind": self.kind, "handle": self.handle, "parent": self.parent,
                "rate_bytes_per_s": self.rate_bytes_per_s, "limit": self.limit, "limit_unit": self.limit_unit,
                "before_bytes": self.before_bytes, "after_bytes": self.after_bytes, "drops": self.drops,
                "readings": len(self.during_bytes)}


def _key(obj: TcObject) -> Key:
    return obj.ifindex, obj.kind, obj.handle, obj.parent


def _device(ifindex: int) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return f"ifindex {ifindex}"


def _queues(reading: TcReading) -> Dict[Key, TcObject]:
    """The qdiscs that hold packets (classes and police actions carry no queue of their own here)."""
    return {_key(o): o for o in reading.objects
            if not o.is_class and o.kind not in ("police", "ingress", "clsact")}


class BacklogWatch:
    """start() reads once; a thread reads every `interval`; stop() reads once more and returns the traces."""

    def __init__(self, reader: Callable[[], TcReading] = read_tc, interval: float = INTERVAL_S) -> None:
        self.reader, self.interval = reader, interval
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._before: Dict[Key, TcObject] = {}
        self._during: Dict[Key, List[int]] = {}
        self.problem = ""

    def _read(self) -> Dict[Key, TcObject]:
        reading = self.reader()
        if reading.problem:
            self.problem = reading.problem
        return _queues(reading)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for key, obj in self._read().items():
                self._during.setdefault(key, []).append(obj.counters.backlog_bytes)

    def start(self) -> BacklogWatch:
        self._before = self._read()
        self._thread = threading.Thread(target=self._loop, name="selftest-backlog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> List[QueueTrace]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        after = self._read()
        out = []
        for key, obj in after.items():
            old = self._before.get(key)
            drops = counter_delta(old.counters.drops, obj.counters.drops) if old is not None else None  # 32-bit
            out.append(QueueTrace(
                device=_device(obj.ifindex), kind=obj.kind, handle=tc_handle(obj.handle), parent=tc_parent(obj.parent),
                rate_bytes_per_s=obj.rate_bytes_per_s, limit=obj.limit, limit_unit=obj.limit_unit,
                burst_bytes=obj.burst_bytes,
                before_bytes=old.counters.backlog_bytes if old is not None else 0,
                during_bytes=list(self._during.get(key, [])), after_bytes=obj.counters.backlog_bytes,
                drops=drops))
        return out

