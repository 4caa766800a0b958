"""collect/ledger.py and judge/ledger.py: the window's counters from two readings, and the rows in the packet's
order with the finding each explains."""

from __future__ import annotations

import dataclasses

from guestcheck.collect.counters import CounterReading, CounterSample
from guestcheck.collect.ledger import collect_ledger
from guestcheck.collect.tc import TcCounters, TcObject, TcReading
from guestcheck.facts import Nic
from guestcheck.judge.ledger import LAYERS, ledger_rows, shapers_on_path
from guestcheck.roots import Roots
from tests.unit.ledgerfacts import ledger_facts, qdisc


def reading(when: float, rcvbuf: int, drops: int, backlog: int = 0) -> CounterReading:
    tbf = TcObject(2, "tbf", 0x80010000, 0xFFFFFFFF, counters=TcCounters(drops=drops, backlog_bytes=backlog),
                   rate_bytes_per_s=12_500_000, limit=3000, limit_unit="bytes")
    return CounterReading(when, None, None, None, None, snmp=f"Udp: RcvbufErrors NoPorts\nUdp: {rcvbuf} 4\n",
                          tc=TcReading([tbf]), listeners=[])


def test_rises_rates_and_totals_come_from_both_readings():
    sample = CounterSample(reading(10.0, 100, 0xFFFFFFF0, 500), reading(12.0, 600, 0x10))
    ledger = collect_ledger(Roots.under("/nonexistent"), [Nic("gc0", ifindex=2)], sample)
    assert ledger.sampled and ledger.seconds == 2.0
    assert dataclasses.astuple(ledger.counters["UdpRcvbufErrors"]) == (600, 500, 250.0)
    q = ledger.qdiscs[0]
    assert (q.device, q.kind, q.handle, q.parent) == ("gc0", "tbf", "8001:", "root")
    assert q.counters["drops"].rise == 0x20  # the 32-bit counter wrapped
    assert q.backlog_bytes == 0 and q.backlog_bytes_peak == 500


def test_not_sampled_keeps_totals_only_and_a_fake_tree_reads_no_netlink():
    one = reading(10.0, 100, 5)
    ledger = collect_ledger(Roots.under("/nonexistent"), [], CounterSample(one, one))
    assert not ledger.sampled and ledger.counters["UdpRcvbufErrors"].rise is None
    bare = CounterReading(1.0, None, None, None, None)
    assert "netlink answers for the running machine only" in collect_ledger(
        Roots.under("/nonexistent"), [], CounterSample(bare, bare)).notes[0]


def test_rows_follow_the_packet_and_name_their_finding():
    f = ledger_facts({"UdpRcvbufErrors": (9, 9), "TcpRetransSegs": (5, 5), "TcpOutSegs": (100, 90),
                      "TcpExtIPReversePathFilter": (1, 1)}, qdiscs=[qdisc(drops=(3, 3), overlimits=(4, 4))])
    rows = ledger_rows(f)
    layers = [r.layer for r in rows]
    assert layers == sorted(layers, key=LAYERS.index)
    found = {(r.layer, r.counter): r for r in rows}
    assert found[("qdisc", "drops")].finding == "QDISC-DROPS" and found[("qdisc", "drops")].detail == "tbf 8001: root"
    assert found[("qdisc", "overlimits")].finding == "QDISC-SHAPED"
    assert found[("udp", "UdpRcvbufErrors")].finding == "UDP-RCVBUF-ERRORS"
    assert found[("ip", "TcpExtIPReversePathFilter")].finding == "IP-RPFILTER-DROPS"
    assert found[("tcp", "TcpRetransSegs")].detail == "of 90 sent"
    assert "TcpOutSegs" not in {r.counter for r in rows}  # a volume, not a row


def test_a_shaper_is_on_the_path_on_the_route_device_or_its_ifb_only():
    f = ledger_facts(qdiscs=[qdisc(device="eth0"), qdisc(device="ifb0", ingress_of=["eth0"]),
                             qdisc(device="ifb1", ingress_of=["eth9"]), qdisc("pfifo", rate_bytes=None)])
    assert [q.device for q in shapers_on_path(f)] == ["eth0", "ifb0"]
