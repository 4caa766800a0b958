"""checks/qdisc.py: QDISC-SHAPED on the route's devices and their ifb, QDISC-DROPS per kind with its fix."""

from __future__ import annotations

from guestcheck.checks import qdisc as check
from guestcheck.findings import Severity
from guestcheck.judge import judge
from tests.unit.ledgerfacts import ledger_facts, qdisc


def findings(f):
    return {(x.id, x.subject): x for x in check.run(f, judge(f))}


def fix_catalog_machines():
    yield "tbf dropping", ledger_facts(qdiscs=[qdisc(drops=(500, 120), overlimits=(900, 300), backlog=30_000)])
    yield "pfifo_fast dropping", ledger_facts(qdiscs=[qdisc("pfifo_fast", handle="0:", limit=1000, unit="packets",
                                                            rate_bytes=None, drops=(40, 40))])
    yield "pfifo dropping, fq_codel here", ledger_facts(qdiscs=[qdisc("pfifo", limit=100, unit="packets",
                                                                       rate_bytes=None, drops=(9, 9))], fq_codel=True)


def test_an_idle_shaper_on_the_route_device_is_info_with_its_rate():
    found = findings(ledger_facts(qdiscs=[qdisc(overlimits=(149_835, 0))]))
    shaped = found[("QDISC-SHAPED", "eth0")]
    assert shaped.severity == Severity.INFO
    assert "100 Mbit/s" in shaped.summary and "tbf 8001: root" in shaped.summary and "149835" in shaped.summary
    assert not shaped.fix and "tc qdisc del dev eth0 root" in shaped.hint


def test_a_shaper_limiting_during_the_window_is_a_warning_with_its_queue_delay():
    found = findings(ledger_facts(qdiscs=[qdisc(overlimits=(900, 300), backlog=125_000)]))
    shaped = found[("QDISC-SHAPED", "eth0")]
    assert shaped.severity == Severity.WARNING
    assert shaped.evidence["queue_delay_ms"] == 10.0 and shaped.evidence["overlimits_rise"] == 300


def test_overlimits_without_a_backlog_are_not_limiting():
    shaped = findings(ledger_facts(qdiscs=[qdisc(overlimits=(900, 300), backlog=0)]))[("QDISC-SHAPED", "eth0")]
    assert shaped.severity == Severity.INFO


def test_a_shaper_off_the_route_is_not_in_the_path():
    assert ("QDISC-SHAPED", "eth9") not in findings(ledger_facts(qdiscs=[qdisc(device="eth9")]))


def test_an_ifb_shaping_the_route_devices_ingress_is_in_the_path():
    found = findings(ledger_facts(qdiscs=[qdisc(device="ifb0", ingress_of=["eth0"], overlimits=(5, 0))]))
    assert "ingress of eth0 redirected here" in found[("QDISC-SHAPED", "ifb0")].summary


def test_an_htb_class_ceil_is_the_shaper_not_its_qdisc():
    found = findings(ledger_facts(qdiscs=[qdisc("htb", handle="1:", rate_bytes=None, limit=1000, unit="packets"),
                                          qdisc("htb", handle="1:10", parent="1:", is_class=True,
                                                rate_bytes=6_250_000, limit=None)]))
    assert [x.summary.split(" shapes")[0] for (i, _), x in found.items() if i == "QDISC-SHAPED"] == \
        ["htb class 1:10 parent 1:"]


def test_tbf_drops_rising_give_a_larger_limit_with_room_for_20ms():
    dropping = findings(ledger_facts(qdiscs=[qdisc(drops=(500, 120), limit=3000)]))[("QDISC-DROPS", "eth0")]
    assert dropping.severity == Severity.WARNING
    assert dropping.fix == "tc qdisc change dev eth0 root tbf rate 100000000bit burst 32768 limit 282768"


def test_fifo_drops_suggest_fq_codel_only_where_the_kernel_has_it():
    fifo = qdisc("pfifo", limit=100, unit="packets", rate_bytes=None, drops=(9, 9), parent="1:10", handle="20:")
    assert findings(ledger_facts(qdiscs=[fifo], fq_codel=True))[("QDISC-DROPS", "eth0")].fix == \
        "tc qdisc replace dev eth0 parent 1:10 handle 20: fq_codel"
    assert findings(ledger_facts(qdiscs=[fifo]))[("QDISC-DROPS", "eth0")].fix == \
        "tc qdisc change dev eth0 parent 1:10 handle 20: pfifo limit 200"


def test_pfifo_fast_drops_double_the_txqueuelen():
    q = qdisc("pfifo_fast", handle="0:", limit=1000, unit="packets", rate_bytes=None, drops=(40, 40))
    assert findings(ledger_facts(qdiscs=[q]))[("QDISC-DROPS", "eth0")].fix == "ip link set dev eth0 txqueuelen 2000"


def test_aqm_drops_are_info_and_aggregates_are_not_counted_twice():
    found = findings(ledger_facts(qdiscs=[qdisc("fq_codel", rate_bytes=None, drops=(50, 50)),
                                          qdisc("mq", handle="1:", rate_bytes=None, drops=(50, 50))]))
    drops = [x for (i, _), x in found.items() if i == "QDISC-DROPS"]
    assert len(drops) == 1 and drops[0].severity == Severity.INFO and "active queue management" in drops[0].summary


def test_drops_since_boot_only_are_info_and_quiet_queues_say_nothing():
    old = findings(ledger_facts(qdiscs=[qdisc(drops=(500, 0), rate_bytes=None)]))[("QDISC-DROPS", "eth0")]
    assert old.severity == Severity.INFO and not old.fix and "doctor --sample 10" in old.hint
    assert not [k for k in findings(ledger_facts(qdiscs=[qdisc(rate_bytes=None)])) if k[0] == "QDISC-DROPS"]


def test_a_hostile_device_name_is_quoted_in_the_fix():
    q = qdisc("pfifo", device="e;reboot", limit=10, unit="packets", rate_bytes=None, drops=(3, 3))
    assert findings(ledger_facts(qdiscs=[q]))[("QDISC-DROPS", "e;reboot")].fix == \
        "tc qdisc change dev 'e;reboot' root pfifo limit 20"


def test_a_default_child_of_mq_is_named_by_its_parent_only():
    q = qdisc("pfifo", handle="0:", parent="8001:2", limit=100, unit="packets", rate_bytes=None, drops=(3, 3))
    assert findings(ledger_facts(qdiscs=[q]))[("QDISC-DROPS", "eth0")].fix == \
        "tc qdisc change dev eth0 parent 8001:2 pfifo limit 200"
