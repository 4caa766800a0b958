"""The guestcheck.selftest/1 document: its fields, the human view made from it, save and compare."""

from __future__ import annotations

import json
import os

import pytest

from guestcheck.findings import Finding, Severity
from guestcheck.selftest import document, errors
from guestcheck.selftest.errors import SelftestError
from guestcheck.selftest.render import render
from guestcheck.selftest.session import Plan
from tests.unit.test_selftest_session import PEER, Runner, doctor_with, selftest


def make_doc(mbps: float, expect: float = 1e9, findings=()) -> dict:
    result, _ = selftest(Plan(PEER, duration=2, parallel=2, expect_bps=expect), Runner(mbps),
                         doctor_with(1000, findings))
    return document.to_document(result)


def test_document_fields():
    doc = make_doc(95, findings=[Finding("OFFLOAD-TSO-OFF", Severity.WARNING, "eth0", "TSO is off",
                                         fix="ethtool -K eth0 tso on"),
                                 Finding("MEM-BALLOON", Severity.WARNING, "machine", "balloon")])
    assert doc["schema"] == "guestcheck.selftest/1"
    assert doc["peer"] == {"host": "10.199.0.2", "port": 5201, "address": "10.199.0.2"}
    assert doc["settings"] == {"duration_s": 2, "parallel": 2, "directions": ["upload", "download"], "timeout_s": 10.0}
    assert doc["expected"] == {"bps": 1e9, "source": "--expect", "interface": None}
    assert doc["interface"] == "eth0"  # far below: the route was asked to pick doctor's findings
    assert len(doc["runs"]) == 4
    first = doc["runs"][0]
    assert {"direction", "streams", "throughput_bps", "sent_bps", "ratio", "retransmits", "cpu_local_percent",
            "cpu_remote_percent", "rtt_mean_ms", "rtt_min_ms", "rtt_max_ms", "seconds", "wall_seconds"} <= set(first)
    assert first["ratio"] == 0.095
    assert doc["connect_rtt"]["min_ms"] == 0.2 and doc["connect_rtt"]["median_ms"] == 0.25
    assert doc["verdict"]["key"] == "far-below" and doc["verdict"]["thresholds"] == {"near": 0.8, "below": 0.4}
    assert doc["causes"] == [{"cause": "offloads off", "finding": "OFFLOAD-TSO-OFF", "severity": "warning",
                              "subject": "eth0", "summary": "TSO is off", "fix": "ethtool -K eth0 tso on"}]
    assert doc["doctor"] == {"ran": True, "problem": None, "other_findings": ["MEM-BALLOON"]}
    assert doc["exit_code"] == errors.FAR_BELOW and doc["compare"] is None
    assert doc["timing"]["iperf3_s"] == pytest.approx(4 * 2.1)
    json.dumps(doc)  # serialisable as it is


def test_human_report_says_what_the_json_says():
    text = render(make_doc(95, findings=[Finding("NIC-EMULATED", Severity.CRITICAL, "eth0",
                                                 "emulated e1000 NIC", fix="-device virtio-net-pci")]))
    lines = text.splitlines()
    assert lines[0] == ("guestcheck selftest: 10.199.0.2 port 5201, 2s per run, expected 1.00 Gbit/s (--expect)")
    assert lines[1].split() == ["upload", "1", "stream", "95.0", "Mbit/s", "10%", "retransmits", "0", "cpu", "here",
                                "1.0%", "peer", "1.0%", "rtt", "0.50", "ms"]
    assert "tcp connect round trip: 0.20 ms min, 0.25 ms median of 3" in lines
    assert "verdict: FAR BELOW LINE RATE (10% of 1.00 Gbit/s; best upload 95.0 Mbit/s, download 95.0 Mbit/s)" in lines
    assert "  - emulated NIC: NIC-EMULATED [eth0] emulated e1000 NIC" in lines
    assert "      fix: -device virtio-net-pci" in lines
    assert "\033[" not in text
    assert "\033[1;31mFAR BELOW LINE RATE\033[0m" in render(make_doc(95), colour=True)


def test_a_near_result_lists_no_causes():
    text = render(make_doc(950))
    assert "verdict: NEAR LINE RATE" in text and "likely causes" not in text


def test_save_then_compare_shows_before_and_after(tmp_path):
    path = str(tmp_path / "before.json")
    before = make_doc(95)
    document.save(path, before)
    assert [p.name for p in tmp_path.iterdir()] == ["before.json"]  # no temp file left behind
    after = make_doc(950)
    after["compare"] = document.compare(document.load(path), after, path)
    cmp = after["compare"]
    assert cmp["before_verdict"] == "far below line rate" and cmp["after_verdict"] == "near line rate"
    assert [(r["direction"], r["streams"], r["change"]) for r in cmp["runs"]] == [
        ("upload", 1, 10.0), ("upload", 2, 10.0), ("download", 1, 10.0), ("download", 2, 10.0)]
    text = render(after)
    assert f"compared with {path}" in text
    assert "  upload    1 stream    before   95.0 Mbit/s   after    950 Mbit/s   x10.00" in text
    assert "  verdict: far below line rate -> near line rate" in text


def test_compare_keeps_runs_only_one_side_has(tmp_path):
    before, after = make_doc(95), make_doc(950)
    before["runs"] = before["runs"][:1]
    rows = document.compare(before, after, "x")["runs"]
    assert rows[1] == {"direction": "upload", "streams": 2, "before_bps": None, "after_bps": 950e6, "change": None}


def test_save_replaces_atomically_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    path.write_text("old")
    document.save(str(path), {"schema": "guestcheck.selftest/1", "runs": []})
    assert json.loads(path.read_text())["schema"] == "guestcheck.selftest/1"

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SelftestError, match=r"cannot save .*No space left on device") as caught:
        document.save(str(path), {"schema": "guestcheck.selftest/1", "runs": [1]})
    assert caught.value.code == errors.FILE_ERROR
    assert json.loads(path.read_text())["runs"] == []
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


@pytest.mark.parametrize("content,why", [
    (None, "cannot read"),
    ("not json", "is not JSON"),
    ('{"schema": "guestcheck.doctor/1"}', "is not a saved selftest"),
    ("[1, 2]", "is not a saved selftest"),
    ('{"schema": "guestcheck.selftest/1", "error": {"code": 11}, "runs": []}', "no finished selftest"),
])
def test_compare_refuses_files_that_are_not_a_finished_selftest(tmp_path, content, why):
    path = tmp_path / "before.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SelftestError, match=why) as caught:
        document.load(str(path))
    assert caught.value.code == errors.FILE_ERROR


def test_error_document():
    doc = document.error_document(SelftestError(errors.BUSY, "10.0.0.2:5201: the server is busy"))
    assert doc["error"] == {"code": 12, "kind": "busy", "message": "10.0.0.2:5201: the server is busy"}
    assert doc["exit_code"] == 12 and doc["runs"] == []


def test_save_makes_no_directories_and_keeps_an_existing_file_mode(tmp_path):
    with pytest.raises(SelftestError) as e:
        document.save(str(tmp_path / "typo/run.json"), {"schema": "x"})
    assert e.value.code == errors.FILE_ERROR and "does not exist" in e.value.message
    assert not (tmp_path / "typo").exists()
    kept = tmp_path / "run.json"
    kept.write_text("{}")
    kept.chmod(0o600)
    document.save(str(kept), {"schema": "x"})
    assert (kept.stat().st_mode & 0o777) == 0o600 and '"schema": "x"' in kept.read_text()


def _saved(tmp_path, doc: dict) -> str:
    path = tmp_path / "before.json"
    document.save(str(path), doc)
    return str(path)


@pytest.mark.parametrize("field,value", [
    ("runs", [1, 2]), ("runs", [{"direction": "sideways", "streams": 1, "throughput_bps": 1.0}]),
    ("runs", [{"direction": "upload", "streams": "1", "throughput_bps": 1.0}]),
    ("runs", [{"direction": "upload", "streams": 1, "throughput_bps": "fast"}]),
    ("runs", [{"direction": "upload", "streams": 1, "throughput_bps": -5}]),
    ("runs", [{"direction": "upload", "streams": 10**6, "throughput_bps": 1.0}]),
    ("verdict", ["far below line rate"]), ("verdict", {"label": "\x1b[2Jfine"}), ("expected", None),
    ("expected", {"bps": "1G"}), ("started_at", 12),
])
def test_a_damaged_compare_file_is_refused_with_what_is_wrong(tmp_path, field, value):
    """Each of these passed load() and crashed compare() or the report after the measurement (issue 9)."""
    doc = make_doc(95)
    doc[field] = value
    damaged = r"is damaged: (runs\[0\]|verdict.label|expected.bps|started_at) "
    with pytest.raises(SelftestError, match=damaged) as caught:
        document.load(_saved(tmp_path, doc))
    assert caught.value.code == errors.FILE_ERROR


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "9" * 5000])
def test_numbers_python_reads_badly_are_refused_where_used_and_ignored_elsewhere(tmp_path, raw):
    """NaN would reach the JSON output; 5000 digits raised ValueError (Python 3.11+)."""
    path = _saved(tmp_path, make_doc(95))
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace('"throughput_bps": 95000000.0', f'"throughput_bps": {raw}', 1))
    with pytest.raises(SelftestError, match=r"is damaged: runs\[0\]") as caught:
        document.load(path)
    assert caught.value.code == errors.FILE_ERROR
    with open(path, "w") as f:
        f.write(text.replace('"guestcheck_version"', f'"unused": {raw}, "guestcheck_version"', 1))
    assert document.load(path)["runs"][0]["throughput_bps"] == 95e6


def test_deep_nesting_non_utf8_and_huge_files_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    for content, why in [(b"[" * 100000 + b"]" * 100000, "not JSON we can read"), (b"\xff{}", "not UTF-8"),
                         (b" " * (document.MAX_FILE_BYTES + 1), "larger than")]:
        path.write_bytes(content)
        with pytest.raises(SelftestError, match=why):
            document.load(str(path))


def test_a_fifo_or_a_directory_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(SelftestError, match="not a regular file") as caught:
            document.load(str(path))
        assert caught.value.code == errors.FILE_ERROR


def test_only_the_checked_fields_are_kept_and_text_is_printable(tmp_path):
    doc = make_doc(95)
    doc["started_at"] = "2024-01-01\x1b[2J"
    loaded = document.load(_saved(tmp_path, doc))
    assert set(loaded) == {"schema", "started_at", "verdict", "expected", "runs"}
    assert loaded["started_at"] == "2024-01-01\\x1b[2J"
    after = make_doc(950)
    after["compare"] = document.compare(loaded, after, "before.json")
    assert "\x1b[2J" not in render(after)
