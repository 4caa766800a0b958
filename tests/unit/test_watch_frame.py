"""watch/frame.py: rates between two readings, and flags from doctor's own checks and thresholds."""

from __future__ import annotations

from guestcheck.checks.memory import STEAL_WARN_TOTAL
from guestcheck.checks.softirq import SQUEEZE_PER_S
from guestcheck.collect.counters import CounterReading
from guestcheck.watch.frame import Reading, make_frame
from guestcheck.watch.links import LinkReading


def _counters(steal: int, idle: int, dropped: int, squeezed: int) -> CounterReading:
    stat = (f"cpu  0 0 0 {2 * idle} 0 0 0 {2 * steal} 0 0\n"
            f"cpu0 0 0 0 {idle} 0 0 0 {steal} 0 0\ncpu1 0 0 0 {idle} 0 0 0 {steal} 0 0\n")
    row = f"00000010 {dropped:08x} {squeezed:08x} 0 0 0 0 0 0 0 0 0 00000000\n"
    row1 = "00000010 00000000 00000000 0 0 0 0 0 0 0 0 0 00000001\n"
    return CounterReading(0.0, stat, row + row1, None, None)


def _reading(at: float, rx_bytes: int, counters: CounterReading, index: int = 2) -> Reading:
    link = LinkReading("eth0", index, {"rx_bytes": rx_bytes, "tx_bytes": 0, "rx_packets": rx_bytes // 1000,
                                       "tx_packets": 0, "rx_dropped": 0},
                       {("rx", 0): {"bytes": rx_bytes, "packets": rx_bytes // 1000}})
    return Reading(at, {"eth0": link}, counters)


def test_rates_per_interface_and_queue():
    frame = make_frame(_reading(10.0, 0, _counters(0, 100, 0, 0)),
                       _reading(12.0, 250_000_000, _counters(0, 300, 0, 0)), vcpus=2)
    (link,) = frame.links
    assert link.rates.rx_bps == 1e9 and link.rates.rx_pps == 125_000 and link.rates.drops_per_s == 0
    assert link.queues[("rx", 0)].rx_bps == 1e9 and link.queues[("rx", 0)].tx_bps == 0
    assert frame.flags == []


def test_a_quiet_frame_flags_nothing_and_a_bad_one_flags_what_doctor_would():
    before = _reading(0.0, 0, _counters(0, 100, 0, 0))
    idle_share = 100 - STEAL_WARN_TOTAL  # exactly at the check's warning threshold
    after = _reading(1.0, 0, _counters(int(STEAL_WARN_TOTAL), 100 + int(idle_share), 3, int(SQUEEZE_PER_S)))
    frame = make_frame(before, after, vcpus=2)
    ids = {(f.id, f.subject) for f in frame.flags}
    assert ("CPU-STEAL", "cpu") in ids
    assert ("SOFTIRQ-DROPS", "cpu0") in ids and ("SOFTIRQ-SQUEEZE", "cpu0") in ids
    assert frame.flagged("SOFTIRQ-DROPS", "cpu0") and not frame.flagged("SOFTIRQ-DROPS", "cpu1")


def test_just_below_the_steal_threshold_is_not_flagged():
    before = _reading(0.0, 0, _counters(0, 0, 0, 0))
    after = _reading(1.0, 0, _counters(int(STEAL_WARN_TOTAL) - 1, 100 - int(STEAL_WARN_TOTAL) + 1, 0, 0))
    assert not make_frame(before, after, vcpus=2).flagged("CPU-STEAL", "cpu")


def test_a_new_device_under_an_old_name_has_no_rate_yet():
    frame = make_frame(_reading(0.0, 10**9, _counters(0, 1, 0, 0), index=2),
                       _reading(1.0, 5, _counters(0, 2, 0, 0), index=7), vcpus=2)
    assert frame.links == []
