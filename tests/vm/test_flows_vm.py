"""guestcheck flows' send-buffer verdict and doctor's FLOW-SNDBUF-LIMITED in a QEMU guest, whose kernel has netem:
a tiny tcp_wmem needs a real round trip to hold a flow (on this host's veths GSO defeats it). One boot runs
tests/vm/flows_guest.py, which pastes the finding's fix verbatim and measures the flow again. The guest has 1 GiB,
as small clouds sell it (MemTotal under 1024 MiB): the fix, sized to the path, is not refused there.
bench/flows_sndbuf.py runs the same scenario several times and prints the figures."""

from __future__ import annotations

import json

import pytest

from . import guest

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def run(vm_image) -> dict:
    result = guest.run_in_guest("python3 tests/vm/flows_guest.py --runs 1", timeout=420, cpus=2, memory_mb=1024)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr[-2000:])
    doc = json.loads(result.stdout)
    return {**doc["runs"][0], "mem_total_kib": doc["mem_total_kib"]}


def sender_flow(flows: dict) -> dict:
    found = [f for f in flows["flows"] if f["remote"].endswith("10.198.0.2")]
    assert found, flows
    return found[0]


def test_a_tiny_send_buffer_over_a_real_round_trip_is_send_buffer(run):
    flows = run["before"]["flows"]
    f = sender_flow(flows)
    assert (f["role"], f["limited_by"], f["rule"]) == ("sender", "send-buffer", "S2"), json.dumps(f)
    # either of S2's tests: tcp_info's send-buffer-limited share (6.1 counted about half the busy time at 100
    # Mbit/s), or the send queue at its limit with the cwnd unused (at 1 Gbit/s 6.1 counted 0 us)
    assert f["sndbuf"] == 4096 and f["wmem_queued_peak"] >= 4096, f
    assert (f["sndbuf_limited_share"] or 0) >= 0.2 or "the send queue reached its limit" in f["why"], f
    assert flows["_rc"] == 1
    assert f["fix"].startswith("guestcheck tune apply wan --rate 100M --rtt ") and f["fix_on"] == "here"


def test_doctor_gives_flow_sndbuf_limited_and_its_fix_clears_it_on_a_1_gib_guest(run):
    assert run["fix"].startswith("guestcheck tune apply wan --rate 100M --rtt "), run["before"]["doctor"]
    assert run["fix_rc"] == 0, run["fix_err"]
    assert run["mem_total_kib"] < 1024 * 1024  # below the profile's min_ram_mb: the sized ceiling is allowed
    assert "but the ceiling is sized to the path" in run["fix_out"], run["fix_out"]
    assert int(run["wmem_after_fix"][2]) > 4096
    after = [f["id"] for f in run["after"]["doctor"]["findings"]]
    assert "FLOW-SNDBUF-LIMITED" not in after, run["after"]
    assert sender_flow(run["after"]["flows"])["limited_by"] != "send-buffer"
    assert run["rollback_rc"] == 0, run["rollback_err"]
