"""checks/tcp.py: TCP-LISTEN-OVERFLOW, TCP-RETRANSMITS (thresholds, spurious, likely layer), TCP-MEMORY-PRESSURE."""

from __future__ import annotations

import pytest

from guestcheck.checks import tcp as check
from guestcheck.facts import Listener, NicCounters
from guestcheck.findings import Severity
from guestcheck.judge import judge
from tests.unit.ledgerfacts import guaranteed_memory, ledger_facts, qdisc, rate


def findings(f):
    return {x.id: x for x in check.run(f, judge(f))}


def fix_catalog_machines():
    yield "listen overflow", ledger_facts({"TcpExtListenOverflows": (40, 40), "TcpExtListenDrops": (40, 40)},
                                          listeners=[Listener("ipv4", "0.0.0.0", 8080, 2, 1)])
    pressure = ledger_facts({"TcpExtTCPMemoryPressures": (3, 1), "TcpExtPruneCalled": (9, 4)})
    pressure.memory = guaranteed_memory()
    yield "memory pressure", pressure


def test_listen_overflow_names_the_full_listener_and_the_profile():
    f = findings(ledger_facts({"TcpExtListenOverflows": (40, 40)},
                              listeners=[Listener("ipv4", "0.0.0.0", 8080, 2, 1),
                                         Listener("ipv6", "::", 443, 3, 4096)]))["TCP-LISTEN-OVERFLOW"]
    assert f.severity == Severity.WARNING and f.fix == "guestcheck tune apply many-connections"
    assert "0.0.0.0:8080 (2 waiting, limit 1)" in f.summary
    assert f.evidence["listeners_with_a_queue"][1] == "[::]:443 (3 waiting, limit 4096)"
    assert f.evidence["net.core.somaxconn"] == "4096" and "backlog" in f.hint


def test_listen_drops_alone_are_not_an_overflow():
    assert "TCP-LISTEN-OVERFLOW" not in findings(ledger_facts({"TcpExtListenDrops": (40, 40)}))


@pytest.mark.parametrize("retrans,sent,severity", [
    (200, 10_000, None),  # exactly 2 %: not above
    (201, 10_000, Severity.WARNING),
    (1000, 10_000, Severity.WARNING),  # exactly 10 %
    (1001, 10_000, Severity.CRITICAL),
    (5000, 9_999, None),  # below the floor of segments sent
])
def test_retransmit_thresholds(retrans, sent, severity):
    f = findings(ledger_facts({"TcpOutSegs": (10**6, sent), "TcpRetransSegs": (retrans, retrans)}))
    assert (f["TCP-RETRANSMITS"].severity if "TCP-RETRANSMITS" in f else None) == severity


def test_spurious_retransmissions_shown_by_dsack_are_not_losses():
    f = findings(ledger_facts({"TcpOutSegs": (10**6, 10_000), "TcpRetransSegs": (500, 500),
                               "TcpExtTCPDSACKRecv": (350, 350)}))
    assert "TCP-RETRANSMITS" not in f  # (500 - 350) / 10000 = 1.5 %


def test_the_likely_layer_is_a_dropping_queue_then_shaping_then_the_nic_then_the_path():
    counters = {"TcpOutSegs": (10**6, 10_000), "TcpRetransSegs": (900, 900)}
    f = ledger_facts(counters, qdiscs=[qdisc(drops=(90, 90), overlimits=(5, 5))])
    assert findings(f)["TCP-RETRANSMITS"].evidence["likely"] == {"layer": "qdisc", "device": "eth0"}
    f = ledger_facts(counters, qdiscs=[qdisc(overlimits=(5, 5))])
    assert findings(f)["TCP-RETRANSMITS"].evidence["likely"] == {"layer": "shaping", "device": "eth0"}
    f = ledger_facts(counters)
    f.nic_counters = [NicCounters("eth0", True, 1.0, interface={"rx_dropped": rate(9, 9)})]
    assert findings(f)["TCP-RETRANSMITS"].evidence["likely"] == {"layer": "nic", "device": "eth0"}
    assert "path beyond this machine" in findings(ledger_facts(counters))["TCP-RETRANSMITS"].summary


def test_memory_pressure_doubles_tcp_mem_only_where_memory_is_guaranteed():
    f = ledger_facts({"TcpExtTCPMemoryPressures": (3, 1)})
    f.memory = None
    unknown = findings(f)["TCP-MEMORY-PRESSURE"]
    assert unknown.severity == Severity.WARNING and not unknown.fix and "not guaranteed" in unknown.hint
    assert check.tcp_mem_fix(f.ledger).splitlines()[0] == "sysctl -w net.ipv4.tcp_mem='44000 58000 88000'"


def test_memory_pressure_with_guaranteed_memory_gives_the_doubled_tcp_mem():
    f = ledger_facts({"TcpExtPruneCalled": (9, 4)})
    f.memory = guaranteed_memory()
    found = findings(f)["TCP-MEMORY-PRESSURE"]
    assert found.fix.startswith("sysctl -w net.ipv4.tcp_mem='44000 58000 88000'\n")
    assert "TcpExtPruneCalled +4" in found.summary
