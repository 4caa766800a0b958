"""checks/udp.py: UDP-RCVBUF-ERRORS, UDP-SNDBUF-ERRORS, UDP-NO-PORT from the ledger's counters."""

from __future__ import annotations

from guestcheck.checks import udp as check
from guestcheck.findings import Severity
from guestcheck.judge import judge
from tests.unit.ledgerfacts import ledger_facts


def findings(f):
    return {x.id: x for x in check.run(f, judge(f))}


def fix_catalog_machines():
    yield "UDP buffers full", ledger_facts({"UdpRcvbufErrors": (239_662, 5000), "UdpSndbufErrors": (9, 9)})


def test_receive_buffer_errors_rising_name_the_settings_and_raise_default_and_ceiling():
    f = findings(ledger_facts({"UdpRcvbufErrors": (239_662, 5000), "Udp6RcvbufErrors": (3, 0)}))["UDP-RCVBUF-ERRORS"]
    assert f.severity == Severity.WARNING and "UdpRcvbufErrors +5000" in f.summary and "Udp6" not in f.summary
    assert f.fix.splitlines()[0] == "sysctl -w net.core.rmem_max=16777216 net.core.rmem_default=1048576"
    assert "/etc/sysctl.d/60-guestcheck-udp-rmem.conf" in f.fix
    assert f.evidence["net.core.rmem_default"] == "212992" and "tune apply throughput" in f.evidence["or"]
    assert "SO_RCVBUF" in f.hint


def test_a_default_already_large_is_doubled_and_a_higher_ceiling_kept():
    settings = {"net.core.rmem_default": "4194304", "net.core.rmem_max": "67108864"}
    f = findings(ledger_facts({"UdpRcvbufErrors": (5, 5)}, settings=settings))["UDP-RCVBUF-ERRORS"]
    assert f.fix.splitlines()[0] == "sysctl -w net.core.rmem_max=67108864 net.core.rmem_default=8388608"


def test_counts_since_boot_only_say_nothing():
    assert findings(ledger_facts({"UdpRcvbufErrors": (5, 0), "UdpNoPorts": (90, 0)})) == {}


def test_send_errors_and_closed_ports_are_info_until_fast():
    slow = findings(ledger_facts({"UdpSndbufErrors": (9, 9), "UdpNoPorts": (20, 20)}))
    assert slow["UDP-SNDBUF-ERRORS"].severity == Severity.INFO and slow["UDP-NO-PORT"].severity == Severity.INFO
    fast = findings(ledger_facts({"UdpSndbufErrors": (2000, 2000), "Udp6NoPorts": (5000, 1000)}))
    assert fast["UDP-SNDBUF-ERRORS"].severity == Severity.WARNING and fast["UDP-NO-PORT"].severity == Severity.WARNING
    assert not fast["UDP-NO-PORT"].fix and "tcpdump" in fast["UDP-NO-PORT"].hint


def test_not_sampled_means_no_rises_and_no_findings():
    f = ledger_facts({"UdpRcvbufErrors": (5, None)})
    assert findings(f) == {}
