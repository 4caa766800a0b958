"""The node_exporter textfile renderer: exact format, escaping that round-trips, one series per finding."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guestcheck import __version__
from guestcheck.facts import Facts
from guestcheck.findings import Finding, Severity, Status
from guestcheck.render import prometheus
from guestcheck.report import Report
from guestcheck.text import escape_control

# One sample line of the text exposition format: name, optional {labels}, value (no timestamp).
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+]+|NaN|\+Inf|-Inf)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)')


def unescape(value: str) -> str:
    return re.sub(r'\\(\\|"|n)', lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """A strict reader of what we write: every sample has HELP and TYPE (gauge, or counter for _total) before it,
    labels are escaped."""
    assert text.endswith("\n")
    typed: set[str] = set()
    helped: set[str] = set()
    samples = []
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind == "gauge" or (kind == "counter" and name.endswith("_total"))
            typed.add(name)
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, body = m.group(1), m.group(3) or ""
        assert name in typed and name in helped, f"{name} has no HELP/TYPE before it"
        labels: dict[str, str] = {}
        pos = 0
        while pos < len(body):
            lm = _LABEL.match(body, pos)
            assert lm, f"bad labels at {body[pos:]!r} in {line!r}"
            labels[lm.group(1)] = unescape(lm.group(2))
            pos = lm.end()
        samples.append((name, labels, float(m.group(4))))
    return samples


def report_of(*findings: Finding, status: Status = Status.CRITICAL) -> Report:
    return Report(Facts(collected_at="2026-11-26T12:00:00+00:00"), list(findings), status)


EMULATED = Finding("NIC-EMULATED", Severity.CRITICAL, "ens3", "emulated e1000 NIC")
VIRT = Finding("VIRT-PLATFORM", Severity.INFO, "machine", "kvm")


def test_exact_text():
    assert prometheus.render(report_of(EMULATED, VIRT)) == (
        f"# HELP guestcheck_info {prometheus._METRICS['guestcheck_info']}\n"
        "# TYPE guestcheck_info gauge\n"
        f'guestcheck_info{{version="{__version__}",profile=""}} 1\n'
        f"# HELP guestcheck_check_severity {prometheus._METRICS['guestcheck_check_severity']}\n"
        "# TYPE guestcheck_check_severity gauge\n"
        'guestcheck_check_severity{id="NIC-EMULATED",subject="ens3",severity="critical"} 3\n'
        'guestcheck_check_severity{id="VIRT-PLATFORM",subject="machine",severity="info"} 1\n'
        "# HELP guestcheck_findings Number of guestcheck findings of each severity.\n"
        "# TYPE guestcheck_findings gauge\n"
        'guestcheck_findings{severity="ok"} 0\n'
        'guestcheck_findings{severity="info"} 1\n'
        'guestcheck_findings{severity="warning"} 0\n'
        'guestcheck_findings{severity="critical"} 1\n'
        f"# HELP guestcheck_status {prometheus._METRICS['guestcheck_status']}\n"
        "# TYPE guestcheck_status gauge\n"
        'guestcheck_status{status="critical"} 2\n'
        "# HELP guestcheck_last_run_timestamp_seconds When guestcheck collected the facts, in seconds since "
        "the epoch.\n"
        "# TYPE guestcheck_last_run_timestamp_seconds gauge\n"
        "guestcheck_last_run_timestamp_seconds 1795694400\n"
    )


@pytest.mark.parametrize(("raw", "escaped"), [
    ('a"b', 'a\\"b'),
    ("a\\b", "a\\\\b"),
    ("a\nb", "a\\nb"),
    ('\\"\n', '\\\\\\"\\n'),
    ("eth0.100", "eth0.100"),
    ("ünï", "ünï"),
])
def test_label_escaping(raw, escaped):
    assert prometheus.escape_label_value(raw) == escaped


@settings(max_examples=200, deadline=None)
@given(subject=st.text(min_size=1, max_size=30))
def test_any_subject_round_trips(subject):
    samples = parse(prometheus.render(report_of(Finding("NIC-EMULATED", Severity.CRITICAL, subject, "x"))))
    checks = [labels for name, labels, _ in samples if name == "guestcheck_check_severity"]
    assert checks == [{"id": "NIC-EMULATED", "subject": escape_control(subject), "severity": "critical"}]


def test_control_characters_in_labels_are_shown_not_sent():
    text = prometheus.render(report_of(Finding("NIC-EMULATED", Severity.CRITICAL, "eth0\x1b[2J\ud800", "x")))
    assert "\x1b" not in text and 'subject="eth0\\\\x1b[2J\\\\ud800"' in text
    text.encode("utf-8")  # writable: no lone surrogate left


def test_one_series_per_id_and_subject_keeps_the_worst():
    a = Finding("OFFLOAD-TSO-OFF", Severity.WARNING, "eth0", "first")
    b = Finding("OFFLOAD-TSO-OFF", Severity.CRITICAL, "eth0", "second")
    c = Finding("OFFLOAD-TSO-OFF", Severity.WARNING, "eth1", "other nic")
    samples = parse(prometheus.render(report_of(a, b, c)))
    checks = {(lb["subject"], lb["severity"]): v for n, lb, v in samples if n == "guestcheck_check_severity"}
    assert checks == {("eth0", "critical"): 3.0, ("eth1", "warning"): 2.0}


@pytest.mark.parametrize("status", list(Status))
def test_status_value_is_the_exit_code(status):
    samples = parse(prometheus.render(report_of(status=status)))
    assert ("guestcheck_status", {"status": status.label}, float(status.value)) in samples


def test_no_timestamp_when_collection_time_is_unknown():
    text = prometheus.render(Report(Facts(collected_at=""), [], Status.UNKNOWN))
    assert "guestcheck_last_run_timestamp_seconds" not in text
    parse(text)


def test_textfile_is_written_atomically_and_readable_by_node_exporter(tmp_path):
    path = prometheus.write_textfile("old 1\n", str(tmp_path))
    assert path == str(tmp_path / "guestcheck.prom")
    prometheus.write_textfile("new 1\n", str(tmp_path))
    assert (tmp_path / "guestcheck.prom").read_text() == "new 1\n"
    assert os.stat(path).st_mode & 0o777 == 0o644  # node_exporter runs as its own user
    assert sorted(os.listdir(tmp_path)) == ["guestcheck.prom"]


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    prometheus.write_textfile("old 1\n", str(tmp_path))

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        prometheus.write_textfile("new 1\n", str(tmp_path))
    assert (tmp_path / "guestcheck.prom").read_text() == "old 1\n"
    assert sorted(os.listdir(tmp_path)) == ["guestcheck.prom"]


def test_temp_name_is_never_read_by_node_exporter(tmp_path, monkeypatch):
    """node_exporter reads *.prom only: the file being written must not match while it is incomplete."""
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    prometheus.write_textfile("x 1\n", str(tmp_path))
    assert seen and not seen[0].endswith(".prom")


def test_info_names_the_version_and_the_applied_profile_and_no_sample_has_a_timestamp():
    report = report_of(EMULATED)
    report.profile = 'through"put'
    text = prometheus.render(report)
    assert f'guestcheck_info{{version="{__version__}",profile="through\\"put"}} 1\n' in text
    for line in text.splitlines():
        if not line.startswith("#"):
            assert len(line.rsplit("} ", 1)[-1].split()) == 1 or len(line.split()) == 2, line  # value, no timestamp
    assert "guestcheck_last_run_timestamp_seconds 1795694400\n" in text
