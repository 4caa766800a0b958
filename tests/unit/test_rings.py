"""Receive rings: overflow with room to grow (warning, `ethtool -G IFACE rx MAX`), far below the maximum (info)."""

from __future__ import annotations

from guestcheck.checks import rings
from guestcheck.collect.nic_counters import NicReading, nic_counters
from guestcheck.facts import Facts, Nic, Rings
from guestcheck.findings import Severity
from tests.judged import with_recorded

IFACE = dict.fromkeys(("rx_dropped", "rx_missed_errors", "rx_fifo_errors", "rx_over_errors", "tx_dropped",
                       "tx_errors"), 0)


def run(nic: Nic, before: dict, after: dict, sampled: bool = True):
    a = NicReading(2.0, IFACE | after, {})
    c = nic_counters(nic.name, NicReading(0.0, IFACE | before, {}) if sampled else a, a)
    return rings.run(*with_recorded(Facts(nics=[nic], nic_counters=[c])))


def e1000(rx: int, name: str = "ens3") -> Nic:
    # QEMU's e1000: `ethtool -g` maximum 4096 (e1000_main.c E1000_MAX_RXD), default 256
    return Nic(name=name, driver="e1000", link_type=1, kind="emulated", rings=Rings(rx_max=4096, tx_max=4096,
                                                                                     rx=rx, tx=256))


def test_overflow_during_the_sample_with_room_is_a_warning_with_the_pasteable_fix():
    [f] = run(e1000(256), {"rx_missed_errors": 10}, {"rx_missed_errors": 50})
    assert (f.id, f.severity) == ("RING-RX-DROPS", Severity.WARNING)
    assert f.fix == "ethtool -G ens3 rx 4096"
    assert "rx_missed_errors +40 (20/s)" in f.summary and "256 of 4096" in f.summary


def test_overflow_since_boot_only_is_info_with_the_same_fix():
    [f] = run(e1000(1024), {"rx_fifo_errors": 3}, {"rx_fifo_errors": 3})
    assert (f.id, f.severity, f.fix) == ("RING-RX-DROPS", Severity.INFO, "ethtool -G ens3 rx 4096")


def test_a_ring_below_a_quarter_of_its_maximum_is_info_and_at_a_quarter_it_is_not():
    [f] = run(e1000(1023), {}, {})
    assert (f.id, f.severity, f.fix) == ("RING-RX-SMALL", Severity.INFO, "ethtool -G ens3 rx 4096")
    [ok] = run(e1000(1024), {}, {})  # doctor -v shows the area was checked
    assert (ok.id, ok.severity, ok.summary) == ("RING-RX-OK", Severity.OK, "RX ring 1024 of 4096 descriptors")
    [ok] = run(e1000(4096), {"rx_missed_errors": 1}, {"rx_missed_errors": 9})  # at max: NIC-DROPS' case
    assert (ok.id, ok.summary) == ("RING-RX-OK", "RX ring 4096 of 4096 descriptors (its maximum)")


def test_the_interface_name_is_quoted_in_the_fix():
    [f] = run(e1000(64, name="a;b"), {}, {})
    assert f.fix == "ethtool -G 'a;b' rx 4096"


def test_ena_rx_dropped_is_its_ring_overflowing():
    # ENA_Linux_Best_Practices.rst: "ENA device would drop packets if Rx ring becomes full"
    nic = Nic(name="eth0", driver="ena", link_type=1, kind="paravirtual", rings=Rings(rx_max=16384, rx=1024))
    [f] = run(nic, {"rx_dropped": 0}, {"rx_dropped": 64})
    assert (f.id, f.severity, f.fix) == ("RING-RX-DROPS", Severity.WARNING, "ethtool -G eth0 rx 16384")


def test_no_rings_or_an_unknown_size_is_not_judged():
    assert run(Nic(name="veth0", link_type=1), {"rx_missed_errors": 0}, {"rx_missed_errors": 5}) == []
    assert run(Nic(name="x", link_type=1, rings=Rings(rx_max=0, rx=0)), {}, {}) == []
