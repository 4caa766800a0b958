"""guestcheck/selftest/backlog.py: every qdisc's backlog around a run, from readings given here."""

from __future__ import annotations

import time

from guestcheck.collect.tc import TcCounters, TcObject, TcReading
from guestcheck.selftest.backlog import BacklogWatch


def reading(drops: int, backlog: int) -> TcReading:
    tbf = TcObject(1, "tbf", 0x80010000, 0xFFFFFFFF, counters=TcCounters(drops=drops, backlog_bytes=backlog),
                   rate_bytes_per_s=12_500_000, limit=250_000, limit_unit="bytes")
    police = TcObject(1, "police", 1, 0xFFFFFFF2)  # carries no queue: left out
    return TcReading([tbf, police])


def test_a_run_keeps_the_backlog_before_during_and_after_and_the_drops_across_a_32_bit_wrap():
    phase = {"now": reading(2**32 - 5, 0)}
    watch = BacklogWatch(reader=lambda: phase["now"], interval=0.001).start()
    phase["now"] = reading(2**32 - 5, 90_000)  # the run fills the queue
    time.sleep(0.05)
    phase["now"] = reading(3, 1_000)  # 8 more drops, across the wrap
    traces = watch.stop()
    assert len(traces) == 1
    q = traces[0]
    assert (q.kind, q.handle, q.before_bytes, q.after_bytes) == ("tbf", "8001:", 0, 1_000)
    assert q.drops == 8  # 5 up to the wrap, then 3
    assert 90_000 in q.during_bytes and set(q.during_bytes) <= {0, 90_000, 1_000}
