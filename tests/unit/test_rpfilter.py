"""checks/rpfilter.py: IP-RPFILTER-DROPS and its loose-mode fix for every strict key."""

from __future__ import annotations

from guestcheck.checks import rpfilter as check
from guestcheck.findings import Severity
from guestcheck.judge import judge
from tests.unit.ledgerfacts import SETTINGS, ledger_facts


def findings(f):
    return {x.id: x for x in check.run(f, judge(f))}


def fix_catalog_machines():
    yield "asymmetric route", ledger_facts({"TcpExtIPReversePathFilter": (2000, 2000)})


def test_rising_drops_are_a_warning_that_sets_every_strict_key_loose():
    f = findings(ledger_facts({"TcpExtIPReversePathFilter": (2000, 2000)}))["IP-RPFILTER-DROPS"]
    assert f.severity == Severity.WARNING and "+2000" in f.summary and "strict on default, eth0" in f.summary
    assert f.fix.splitlines()[0] == ("sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2 "
                                     "net.ipv4.conf.eth0.rp_filter=2")
    assert "60-guestcheck-rpfilter.conf" in f.fix


def test_an_unsafe_interface_name_is_left_out_of_the_command():
    settings = {**SETTINGS, "net.ipv4.conf.e$(x).rp_filter": "1"}
    f = findings(ledger_facts({"TcpExtIPReversePathFilter": (5, 5)}, settings=settings))["IP-RPFILTER-DROPS"]
    assert "$(x)" not in f.fix


def test_quiet_or_since_boot_only_says_nothing():
    assert findings(ledger_facts({"TcpExtIPReversePathFilter": (2000, 0)})) == {}
