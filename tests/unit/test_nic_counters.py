"""The NIC counter collector: two readings of sysfs statistics and driver counters around the sample window."""

from __future__ import annotations

import json
from pathlib import Path

from guestcheck.collect.counters import CounterSample, read_counters
from guestcheck.collect.ethtool import REPLAY_DIR, EthtoolReplay
from guestcheck.collect.nic_counters import NicReading, nic_counters, read_nics
from guestcheck.facts import facts_from_dict
from tests.fakemachine import FakeMachine
from tests.unit import driver_stats

ZERO = dict.fromkeys(("rx_dropped", "rx_missed_errors", "rx_fifo_errors", "rx_over_errors", "tx_dropped",
                      "tx_errors"), 0)


def machine(tmp_path: Path, stats: dict, driver: str = "ena") -> FakeMachine:
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver=driver, stats=stats, statistics=ZERO)
    m.write_ethtool()
    return m


def reading(m: FakeMachine):
    source = EthtoolReplay(str(m.base / REPLAY_DIR))
    return read_counters(m.roots, lambda: read_nics(m.roots, ["eth0"], source))


def test_rises_and_rates_over_the_window_and_totals_since_boot(tmp_path):
    m = machine(tmp_path, driver_stats.ena(pps_allowance_exceeded=100))
    before = reading(m)
    m.ethtool.stat_sets["eth0"] = driver_stats.ena(pps_allowance_exceeded=160, queue_3_tx_queue_stop=4)
    m.write_ethtool()
    m.set_statistics("eth0", {**ZERO, "rx_dropped": 7})
    after = reading(m)
    sample = CounterSample(before, after)
    facts = m.collect(counters=sample)
    [c] = facts.nic_counters
    assert c.sampled and c.seconds > 0
    assert (c.driver["pps_allowance_exceeded"].total, c.driver["pps_allowance_exceeded"].rise) == (160, 60)
    assert c.driver["queue_3_tx_queue_stop"].rise == 4
    assert c.interface["rx_dropped"].rise == 7 and c.interface["tx_dropped"].rise == 0
    assert c.gauges == {"conntrack_allowance_available": 0}
    # only the curated counters are kept with rates; the NIC's raw driver_stats are the last reading, all of them
    assert "queue_0_rx_cnt" not in c.driver and len(c.driver) == 5 + 8
    assert facts.nic("eth0").driver_stats == m.ethtool.stat_sets["eth0"]
    again = facts_from_dict(json.loads(json.dumps(facts.to_dict())))
    assert again.nic_counters == facts.nic_counters


def test_sample_zero_takes_one_reading_and_reports_no_rates(tmp_path):
    m = machine(tmp_path, driver_stats.virtio_old(rx_queue_1_drops=3))
    facts = m.collect(sample_seconds=0)
    [c] = facts.nic_counters
    assert not c.sampled and c.seconds == 0
    assert c.driver["rx_queue_1_drops"].total == 3 and c.driver["rx_queue_1_drops"].rise is None
    assert c.interface["rx_dropped"].per_s is None


def test_a_driver_without_statistics_degrades_to_a_note(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="e1000", statistics=ZERO)  # no stats answer: "unsupported"
    facts = m.collect()
    [c] = facts.nic_counters
    assert c.driver == {} and c.notes == ["no driver statistics (unsupported)"]
    assert set(c.interface) == set(ZERO)


def test_a_counter_that_went_backwards_has_no_rate():
    before = NicReading(1.0, {"rx_dropped": 50}, {"rx_queue_0_drops": 9})
    after = NicReading(2.0, {"rx_dropped": 2}, {"rx_queue_0_drops": 10})
    c = nic_counters("eth0", before, after)
    assert c.interface["rx_dropped"].rise is None and c.driver["rx_queue_0_drops"].rise == 1
    assert any("went backwards" in n for n in c.notes)


def test_64_bit_totals_are_kept_whole():
    big = 2**64 - 5
    c = nic_counters("eth0", NicReading(1.0, {"rx_dropped": big - 10}), NicReading(3.0, {"rx_dropped": big}))
    assert (c.interface["rx_dropped"].total, c.interface["rx_dropped"].rise, c.interface["rx_dropped"].per_s) == \
        (big, 10, 5.0)


def test_facts_to_dict_is_what_dataclasses_asdict_gives(tmp_path):
    import dataclasses

    m = machine(tmp_path, driver_stats.virtio_new(rx0_drops=2), driver="virtio_net")
    facts = m.collect()
    assert facts.to_dict() == dataclasses.asdict(facts)
    assert json.dumps(facts.to_dict(), sort_keys=True) == json.dumps(dataclasses.asdict(facts), sort_keys=True)
