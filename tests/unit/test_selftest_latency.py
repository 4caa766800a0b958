"""The latency verdict (guestcheck.selftest.latency): percentiles, added latency, verdict, exit codes, causes."""

from __future__ import annotations

import pytest

from guestcheck.selftest import errors
from guestcheck.selftest.backlog import QueueTrace
from guestcheck.selftest.latency import (
    LatencyResult,
    LoadedRun,
    Rings,
    added,
    judge_causes,
    percentile,
    shorter_queue_fix,
    stats,
    to_dict,
)
from guestcheck.selftest.rttprobe import Samples, Target

TARGET = Target("tcp-rst", "10.0.0.2", 5202)


def test_percentiles_interpolate_like_numpy():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.5
    assert percentile(values, 90) == pytest.approx(90.1)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    with pytest.raises(ValueError):
        percentile([], 50)


def test_stats_count_what_was_sent_and_lost():
    s = Samples(rtts_ms=[1.0, 2.0, 3.0], sent=5, lost=2)
    assert stats(s) == {"count": 3, "sent": 5, "lost": 2, "p50_ms": 2.0, "p90_ms": 2.8, "p99_ms": 2.98}
    assert stats(Samples(sent=3, lost=3))["p90_ms"] is None


def tbf(before: int, during: list, limit: int = 250_000) -> QueueTrace:
    return QueueTrace("gc0", "tbf", "8001:", "root", 12_500_000, limit, "bytes", 32_000, before, during, 0, 0)


def run(direction: str, rtts: list, queues=(), congestion: str = "cubic") -> LoadedRun:
    return LoadedRun(direction, 1, Samples(rtts_ms=rtts, sent=len(rtts)), list(queues), 95e6, congestion)


def result(runs, idle=(0.1,) * 20, target_ms=30.0) -> LatencyResult:
    return LatencyResult(TARGET, ["tcp-rst 10.0.0.2:5202 answers"], target_ms,
                         Samples(rtts_ms=list(idle), sent=len(idle)), list(runs))


def test_added_latency_is_loaded_minus_idle_and_never_below_zero():
    idle = {"p50_ms": 1.0, "p90_ms": 3.0, "p99_ms": None}
    loaded = {"p50_ms": 6.5, "p90_ms": 2.5, "p99_ms": 9.0}  # p90 under idle's: an idle probe hit a hiccup
    assert added(loaded, idle) == {"p50_ms": 5.5, "p90_ms": 0.0, "p99_ms": None}


def test_within_target_keeps_exit_code_0():
    r = result([run("upload", [5.0] * 50), run("download", [8.0] * 50)])
    assert r.key == "within" and r.exit_code == errors.NEAR == 0
    assert r.added_by_direction()["download"] == {"p50_ms": 7.9, "p90_ms": 7.9, "p99_ms": 7.9}
    assert r.deciding() == ("download", 7.9)


def test_over_target_is_exit_4_and_the_worse_direction_decides():
    r = result([run("upload", [40.0] * 50), run("download", [10.0] * 50)])
    assert r.key == "over" and r.exit_code == errors.LATENCY == 4
    doc = to_dict(r)
    assert doc["verdict"] == {"key": "over", "label": "over target", "direction": "upload", "added_p90_ms": 39.9}


def test_the_target_is_strictly_exceeded():
    assert result([run("upload", [30.1] * 10)]).key == "within"  # added 30.0 is not over 30
    assert result([run("upload", [30.1] * 10)], target_ms=29.9).key == "over"


def test_no_answering_port_is_its_own_code():
    r = LatencyResult(None, ["udp port 5202: nothing listens", "tcp-rst port 5202: no answer"], 30.0)
    assert r.key == "no-probe" and r.exit_code == errors.NO_PROBE == 20
    doc = to_dict(r)
    assert doc["probe"] is None and doc["idle"] is None and doc["verdict"]["key"] == "no-probe"


def test_runs_of_one_direction_are_pooled():
    r = result([run("upload", [1.0] * 10), run("upload", [50.0] * 10)])
    loaded = to_dict(r)["loaded"]["upload"]
    assert loaded["count"] == 20 and loaded["p50_ms"] == 25.5


def test_the_queue_whose_backlog_grew_is_the_cause_with_its_limit_in_ms():
    grew = tbf(0, [240_000] * 40)
    idle_one = QueueTrace("lo", "noqueue", "0:", "root", None, None, "", None, 0, [0] * 40)
    r = result([run("upload", [20.0] * 50, [idle_one, grew])], target_ms=10)
    causes = judge_causes(r, Rings("gc0", 256, 256, 4096, 4096))
    queue, cc, rings = causes
    assert queue.cause == "a full queue: tbf on gc0" and queue.subject == "gc0 tbf 8001: root"
    assert "median of 240.0 KB (19.2 ms)" in queue.evidence
    assert "its limit 250.0 KB is 20.0 ms at 100.0 Mbit/s" in queue.evidence
    assert queue.fix == ("tc qdisc change dev gc0 root handle 8001: tbf rate 100000000bit burst 32000 latency 5ms; "
                         "or `guestcheck tune apply latency` (fq with BBR)")
    assert cc.cause == "congestion control cubic fills the queue" and cc.fix == "guestcheck tune apply latency"
    assert rings.cause == "NIC rings on gc0" and "tx 256 of at most 4096" in rings.evidence
    section = to_dict(r)["runs"][0]["queue"]
    assert section["median_ms"] == 19.2 and section["limit_ms"] == 20.0 and section["max_bytes"] == 240_000


def test_bbr_is_named_as_keeping_queues_short_without_a_fix():
    r = result([run("upload", [40.0] * 50, [tbf(0, [100_000] * 10)], congestion="bbr")])
    cc = judge_causes(r, None)[1]
    assert cc.cause == "congestion control bbr" and "keeps queues short" in cc.evidence and cc.fix == ""


def test_a_queue_not_on_this_machine_says_so():
    r = result([run("download", [40.0] * 50, [tbf(0, [0, 1500, 0])], congestion="")])
    (cause,) = judge_causes(r, None)
    assert cause.cause == "the queue is not in this machine's qdiscs" and cause.subject == "download"
    assert "the peer sends" in cause.evidence and "on the peer" in cause.fix


def test_no_causes_within_target():
    assert judge_causes(result([run("upload", [5.0] * 50, [tbf(0, [200_000] * 5)])]), Rings("e", 1, 1, 2, 2)) == []


def test_fifo_fixes_size_the_queue_for_5_ms_at_the_drain_rate():
    pfifo = QueueTrace("eth0", "pfifo", "1:", "root", None, 1000, "packets", None, 0, [500_000])
    assert shorter_queue_fix(pfifo, 12_500_000) == "tc qdisc change dev eth0 root handle 1: pfifo limit 41"
    fast = QueueTrace("eth 0", "pfifo_fast", "0:", "root", None, 1000, "packets", None, 0, [500_000])
    assert shorter_queue_fix(fast, 12_500_000) == "ip link set dev 'eth 0' txqueuelen 41"  # shell-quoted
    other = QueueTrace("eth0", "sfq", "1:", "root", None, 127, "packets", None, 0, [])
    assert shorter_queue_fix(other, None).startswith("give sfq on eth0 a shorter limit")
