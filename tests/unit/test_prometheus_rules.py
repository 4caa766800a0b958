"""contrib/prometheus/guestcheck.rules.yml: promtool accepts the rules and passes their unit tests, each alert
repeats its finding's threshold and severity, and its window fits how often guestcheck-metrics.timer refreshes.

promtool comes from Debian's `prometheus` package (tests/system-packages.txt): without it these tests fail, never
skip, so a CI that lost the package cannot pass without running them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Dict, List, Tuple

import pytest
import yaml

from guestcheck.checks import catalog
from guestcheck.checks.conntrack import FULL_SHARE
from guestcheck.ini import ini_sections
from guestcheck.quantities import parse_duration
from tests.fakemachine import REPO

RULES = REPO / "contrib/prometheus/guestcheck.rules.yml"
RULE_TESTS = REPO / "contrib/prometheus/guestcheck.rules.test.yml"
TIMER = REPO / "debian/guestcheck-metrics.timer"

# The loss ledger's findings (ledger-spec.md), which the rules may name before their checks are in the catalog.
LEDGER_FINDINGS = {"QDISC-SHAPED", "QDISC-DROPS", "UDP-RCVBUF-ERRORS", "UDP-SNDBUF-ERRORS", "UDP-NO-PORT",
                   "TCP-LISTEN-OVERFLOW", "TCP-RETRANSMITS", "TCP-MEMORY-PRESSURE", "IP-RPFILTER-DROPS"}


def expected_thresholds() -> Dict[str, float]:
    """The findings' thresholds the rules must repeat, by the name of the constant that holds each.

    Each is the check's own constant (guestcheck/checks/tcp.py, udp.py, conntrack.py), so a threshold changed in
    a check fails here until the rules follow. RISING is "any rise during the window", the threshold of every
    other rising finding."""
    from guestcheck.checks import tcp, udp

    return {
        "RISING": 0,
        "RETRANS_WARN_SHARE": tcp.RETRANS_WARN_SHARE,
        "RETRANS_CRIT_SHARE": tcp.RETRANS_CRIT_SHARE,
        "RETRANS_MIN_SEGMENTS": tcp.RETRANS_MIN_SEGMENTS,
        "UDP_SNDBUF_WARN_PER_S": udp.FAST_PER_S,
        "CONNTRACK_FULL_SHARE": FULL_SHARE,
    }


# (alert, severity) -> (finding, the expression's comparisons in order: operator and threshold name).
# Staleness has no finding: its threshold follows the timer (test_staleness_is_a_few_refresh_intervals).
ALERTS: Dict[Tuple[str, str], Tuple[str, List[Tuple[str, str]]]] = {
    ("GuestcheckNicAllowanceExceeded", "critical"): ("NIC-ALLOWANCE-EXCEEDED", [(">", "RISING")]),
    ("GuestcheckQdiscDrops", "warning"): ("QDISC-DROPS", [(">", "RISING")]),
    ("GuestcheckUdpReceiveBufferErrors", "warning"): ("UDP-RCVBUF-ERRORS", [(">", "RISING")]),
    ("GuestcheckUdpSendBufferErrors", "warning"): ("UDP-SNDBUF-ERRORS", [(">=", "UDP_SNDBUF_WARN_PER_S")]),
    ("GuestcheckTcpListenOverflows", "warning"): ("TCP-LISTEN-OVERFLOW", [(">", "RISING")]),
    ("GuestcheckTcpRetransmits", "warning"): (
        "TCP-RETRANSMITS",
        [(">", "RETRANS_WARN_SHARE"), ("<=", "RETRANS_CRIT_SHARE"), (">=", "RETRANS_MIN_SEGMENTS")]),
    ("GuestcheckTcpRetransmits", "critical"): (
        "TCP-RETRANSMITS", [(">", "RETRANS_CRIT_SHARE"), (">=", "RETRANS_MIN_SEGMENTS")]),
    ("GuestcheckTcpMemoryPressure", "warning"): ("TCP-MEMORY-PRESSURE", [(">", "RISING"), (">", "RISING")]),
    ("GuestcheckIpReversePathFilterDrops", "warning"): ("IP-RPFILTER-DROPS", [(">", "RISING")]),
    ("GuestcheckConntrackDrops", "critical"): ("CONNTRACK-DROPS", [(">", "RISING")] * 3),
    ("GuestcheckConntrackTableFull", "warning"): ("CONNTRACK-TABLE-FULL",
                                                   [(">=", "CONNTRACK_FULL_SHARE"), (">", "RISING")]),
}
STALE = ("GuestcheckStale", "warning")

_COMPARISON = re.compile(r"(>=|<=|==|!=|>|<)\s*([0-9][0-9.]*(?:e[-+]?[0-9]+)?)")
_WINDOW = re.compile(r"\[([0-9]+[smhd])\]")


def promtool() -> str:
    """promtool's path, or a failed test naming the package that provides it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: install Debian's `prometheus` package (apt-get install prometheus), "
                    "as CI does from tests/system-packages.txt", pytrace=False)
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)


def rules() -> Dict[Tuple[str, str], dict]:
    """(alert, severity) -> the rule, from the one group."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert [g["name"] for g in groups] == ["guestcheck"]
    out = {}
    for rule in groups[0]["rules"]:
        key = (rule["alert"], rule["labels"]["severity"])
        assert key not in out, f"{key} twice"
        out[key] = rule
    return out


def comparisons(expr: str) -> List[Tuple[str, float]]:
    return [(op, float(number)) for op, number in _COMPARISON.findall(expr)]


def timer_seconds() -> Dict[str, float]:
    return {key: parse_duration(value) for key, value in ini_sections(TIMER.read_text())["Timer"]}


def test_promtool_checks_the_rules():
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS) + 1} rules found" in done.stdout


def test_promtool_unit_tests_pass():
    """Series that must fire and series that must stay quiet, for every alert (the file says which)."""
    done = run_promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test():
    tested = {t["alertname"] for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in group.get("alert_rule_test", [])}
    assert tested == {alert for alert, _ in rules()}


def test_a_missing_promtool_fails_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"Debian's `prometheus` package"):
        promtool()


def test_thresholds_are_the_findings():
    thresholds = expected_thresholds()
    found = rules()
    assert set(found) == set(ALERTS) | {STALE}
    for key, (finding, expected) in ALERTS.items():
        rule = found[key]
        assert rule["labels"]["finding"] == finding, key
        assert comparisons(rule["expr"]) == [(op, float(thresholds[name])) for op, name in expected], key


def test_every_alert_names_its_finding_and_explain():
    known = set(catalog()) | LEDGER_FINDINGS
    for key, rule in rules().items():
        if key == STALE:
            assert "finding" not in rule["labels"]
            assert "guestcheck refresh" in rule["annotations"]["description"]
            continue
        finding = rule["labels"]["finding"]
        assert finding in known, key
        assert f"guestcheck explain {finding}" in rule["annotations"]["description"], key
        assert set(rule["annotations"]) == {"summary", "description"}


def test_windows_hold_two_refreshes():
    """The counters move only when the timer's refresh rewrites the file: every window is the same, and longer
    than the longest gap between two refreshes (interval plus the random delay) and a minute's scrape."""
    timer = timer_seconds()
    longest_gap = timer["OnUnitActiveSec"] + timer["RandomizedDelaySec"]
    windows = {w for rule in rules().values() for w in _WINDOW.findall(rule["expr"])}
    assert len(windows) == 1, windows
    window = parse_duration(windows.pop())
    assert window >= longest_gap + 60
    assert window == 2 * timer["OnUnitActiveSec"]


def test_staleness_is_a_few_refresh_intervals():
    """A few intervals: one slow or failed run does not alert, and a machine just booted (served its old file
    until the timer's first run, OnBootSec after boot) does not either, because of `for`."""
    timer = timer_seconds()
    rule = rules()[STALE]
    assert rule["expr"].startswith("time() - guestcheck_last_run_timestamp_seconds ")
    (op, seconds), = comparisons(rule["expr"])
    assert op == ">"
    assert 3 * timer["OnUnitActiveSec"] <= seconds <= 6 * timer["OnUnitActiveSec"]
    assert parse_duration(rule["for"]) > timer["OnBootSec"] + timer["RandomizedDelaySec"]
