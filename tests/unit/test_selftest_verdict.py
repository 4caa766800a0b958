"""The verdict's thresholds and the causes it draws from doctor's findings (real captures judged)."""

from __future__ import annotations

import pytest

from guestcheck.doctor import build_report
from guestcheck.findings import Finding, Severity
from guestcheck.selftest import errors
from guestcheck.selftest.iperf3 import RunResult
from guestcheck.selftest.verdict import BELOW_AT, NEAR_AT, cause_for, classify_ratio, judge_runs, likely_causes
from tests.fakemachine import from_snapshot


def run(direction: str, streams: int, mbps: float) -> RunResult:
    return RunResult(direction, streams, mbps * 1e6, mbps * 1e6, 0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 5.1)


@pytest.mark.parametrize("ratio,key", [
    (1.0, "near"), (0.956, "near"), (NEAR_AT, "near"), (0.7999, "below"), (0.5, "below"), (BELOW_AT, "below"),
    (0.3999, "far-below"), (0.095, "far-below"), (0.0, "far-below"), (1.2, "near"),
])
def test_thresholds(ratio, key):
    assert classify_ratio(ratio) == key


def test_the_best_run_of_each_direction_counts_and_the_worse_direction_decides():
    runs = [run("upload", 1, 700), run("upload", 4, 940), run("download", 1, 300), run("download", 4, 450)]
    v = judge_runs(runs, 1e9)
    assert v.best_bps == {"upload": 940e6, "download": 450e6}
    assert v.ratio == pytest.approx(0.45)
    assert (v.key, v.label, v.exit_code) == ("below", "below line rate", errors.BELOW)
    assert any("download is the slower direction" in n for n in v.notes)


def test_directions_within_ten_percent_are_not_called_slower():
    v = judge_runs([run("upload", 1, 95), run("download", 1, 98)], 1e9)
    assert v.key == "far-below" and v.notes == []


def test_exit_codes_follow_the_verdict():
    assert judge_runs([run("upload", 1, 956)], 1e9).exit_code == errors.NEAR == 0
    assert judge_runs([run("upload", 1, 95)], 1e9).exit_code == errors.FAR_BELOW == 2


def test_a_single_stream_limit_is_called_out():
    v = judge_runs([run("upload", 1, 450), run("upload", 4, 930)], 1e9)
    assert v.key == "near"
    assert v.notes == ["upload: one stream reaches 45% but 4 streams reach 93%: a per-flow limit "
                       "(TCP buffers or window, one vCPU per flow), not the link"]


def test_no_runs_is_a_bug_not_a_verdict():
    with pytest.raises(ValueError):
        judge_runs([], 1e9)


@pytest.mark.parametrize("finding_id,cause", [
    ("NIC-EMULATED", "emulated NIC"),
    ("OFFLOAD-TSO-OFF", "offloads off"),
    ("OFFLOAD-BACKEND-NONE", "offloads off"),
    ("QUEUES-SINGLE-VIRTIO", "single queue (one vCPU takes all the NIC's work)"),
    ("FLOW-SNDBUF-LIMITED", "small TCP buffers (a connection held back by its send buffer)"),
    ("FLOW-RWND-LIMITED", "small TCP buffers (a connection held back by the receiver's window)"),
    ("CONNTRACK-TABLE-FULL", "kernel network limits (the conntrack table is full)"),
    ("PATH-NAT-SLIRP", "NAT in the path"),
    ("PATH-NAT", "NAT in the path"),
    ("SOFTIRQ-SQUEEZE", "softirq saturation (packet work piles up on one vCPU)"),
    ("CPU-STEAL", "vCPU steal (the host's CPUs are oversubscribed)"),
    ("MEM-BALLOON", None),
    ("PATH-NO-DEFAULT-ROUTE", None),
])
def test_finding_ids_map_to_causes(finding_id, cause):
    assert cause_for(finding_id) == cause


def test_every_cause_matches_a_finding_doctor_can_give():
    """README: the causes listed are real finding ids (the old reserved SYSCTL-* is now the FLOW-* ids)."""
    import fnmatch

    from guestcheck.checks import catalog
    from guestcheck.selftest.verdict import CAUSES

    ids = list(catalog())
    dead = [pattern for pattern, _ in CAUSES if not fnmatch.filter(ids, pattern)]
    assert dead == []


def test_findings_about_other_nics_and_ok_findings_are_left_out():
    findings = [
        Finding("NIC-EMULATED", Severity.CRITICAL, "eth1", "emulated e1000"),
        Finding("OFFLOAD-TSO-OFF", Severity.WARNING, "eth0", "TSO off", fix="ethtool -K eth0 tso on"),
        Finding("NIC-PARAVIRTUAL", Severity.OK, "eth0", "virtio"),
        Finding("FLOW-RWND-LIMITED", Severity.WARNING, "10.0.0.2:5201", "held by the window"),
        Finding("MEM-BALLOON", Severity.WARNING, "machine", "balloon inflated"),
    ]
    causes, other = likely_causes(findings, "eth0", ["lo", "eth0", "eth1"])
    assert [(c.finding, c.subject) for c in causes] == [("OFFLOAD-TSO-OFF", "eth0"),
                                                        ("FLOW-RWND-LIMITED", "10.0.0.2:5201")]
    assert causes[0].fix == "ethtool -K eth0 tso on" and causes[0].severity == "warning"
    assert other == ["MEM-BALLOON"]
    # path interface unknown: nothing is filtered by subject
    causes, _ = likely_causes(findings, None, ["lo", "eth0", "eth1"])
    assert {c.finding for c in causes} == {"NIC-EMULATED", "OFFLOAD-TSO-OFF", "FLOW-RWND-LIMITED"}


def test_an_emulated_nic_capture_explains_a_slow_result(tmp_path):
    facts = from_snapshot("qemu-e1000", tmp_path).collect()
    causes, _ = likely_causes(build_report(facts).findings, "ens3", [n.name for n in facts.nics])
    by_cause = {c.cause: c for c in causes}
    assert by_cause["emulated NIC"].finding == "NIC-EMULATED"
    assert "-device virtio-net-pci" in by_cause["emulated NIC"].fix
    assert by_cause["offloads off"].finding.startswith("OFFLOAD-")


def test_a_single_queue_slirp_capture_explains_a_slow_result(tmp_path):
    facts = from_snapshot("qemu-virtio", tmp_path).collect()
    causes, _ = likely_causes(build_report(facts).findings, "ens3", [n.name for n in facts.nics])
    ids = {c.finding for c in causes}
    assert {"QUEUES-SINGLE-VIRTIO", "OFFLOAD-BACKEND-NONE"} <= ids
    assert "NIC-EMULATED" not in ids


def test_an_idle_shaper_on_the_path_is_a_cause_although_doctor_saw_it_idle():
    shaped = Finding("QDISC-SHAPED", Severity.INFO, "eth0", "tbf 8001: root shapes to 100 Mbit/s; idle")
    noise = Finding("UDP-NO-PORT", Severity.INFO, "udp", "datagrams to closed ports")
    causes, other = likely_causes([shaped, noise], "eth0", ["eth0"])
    assert [(c.finding, c.cause) for c in causes] == [("QDISC-SHAPED", "a shaper on the path caps the rate")]
    assert other == []
