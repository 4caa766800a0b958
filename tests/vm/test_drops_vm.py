"""`doctor --drops` in the Debian 12 guest, on its own kernel (6.1) and that kernel's older drop-reason list: the
host kernel (6.18) cannot show what 6.1's tracepoint prints. One boot runs tests/vm/drops_guest.py.

What 6.1 really prints (captured here into tests/unit/data/trace/kfree_skb_format-6.1-debian12) is held by
tests/unit/test_trace_events.py; this test holds doctor on the live kernel: NO_SOCKET counted for the datagrams
sent to a closed port, placed on its ledger row, no instance left, and tracefs mounted as it was before.
"""

from __future__ import annotations

import json
import re

import pytest

from guestcheck.trace.events import parse_format
from tests.faketracefs import format_text

from . import guest

pytestmark = pytest.mark.vm
PACKETS = 1000


@pytest.fixture(scope="module")
def run(vm_image) -> dict:
    result = guest.run_in_guest("python3 tests/vm/drops_guest.py", timeout=600)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr[-2000:])
    return json.loads(result.stdout)


def test_the_guest_runs_debian_12s_kernel(run):
    assert re.match(r"^6\.1\.[0-9]", run["uname_r"]), run["uname_r"]


def test_a_closed_port_is_no_socket_on_the_udp_row(run):
    doc = run["first"]
    assert "Traceback" not in doc["_stderr"], doc["_stderr"]
    assert doc["_window_seen"], doc
    drops = doc["drops"]
    assert drops["available"] and drops["reason_unavailable"] == "", drops
    reasons = {r["reason"]: r for r in drops["reasons"]}
    no_socket = reasons["NO_SOCKET"]
    assert no_socket["count"] >= PACKETS * 0.95, reasons
    assert (no_socket["ledger_layer"], no_socket["ledger_counter"], no_socket["finding"]) == \
        ("udp", "UdpNoPorts", "UDP-NO-PORT")
    assert no_socket["protocols"] == ["ipv4"]
    facts = doc["facts"]["drops"]
    assert facts["lines_malformed"] == 0 and facts["events_lost"] == 0, facts
    row = next(r for r in doc["ledger"]["rows"] if r["counter"] == "UdpNoPorts")
    assert row["rise"] == PACKETS  # the kernel's own counter agrees


def test_the_reasons_are_the_real_format_files(run):
    """reasons_known is the number the kernel's format names (counted here by its `{ N, "NAME" }` pairs, less the
    MAX end marker), and the captured file in tests/unit/data is still what this image's kernel prints."""
    real = run["format"]
    pairs = re.findall(r'\{ [0-9]+, "([A-Z0-9_]+)" \}', real)
    assert pairs[-1] == "MAX"
    assert run["first"]["facts"]["drops"]["reasons_known"] == len(pairs) - 1
    captured = parse_format(format_text("6.1-debian12"))
    live = parse_format(real)
    assert (live.reasons, live.location_symbolic) == (captured.reasons, captured.location_symbolic), \
        "the image's kernel prints another kfree_skb format: recapture tests/unit/data/trace/kfree_skb_format-6.1-*"


def test_61_prints_the_location_as_a_hashed_pointer(run):
    """Debian 12's 6.1 prints `location=%p`, a hashed pointer (6.18 here prints %pS, function+off/len): the rows
    carry "?" for the location, not a function."""
    assert "location=%p " in run["format"]
    drops = run["first"]["facts"]["drops"]
    assert drops["location_symbolic"] is False
    no_socket = next(r for r in run["first"]["drops"]["reasons"] if r["reason"] == "NO_SOCKET")
    assert no_socket["locations"] == ["?"]


def test_no_instance_is_left_and_tracefs_is_mounted_as_before(run):
    assert run["mounts_before"] == [] and run["mounts_after"] == []  # doctor unmounted the mount it made
    assert not [i for i in run["instances_after"] if i.startswith("guestcheck-")], run["instances_after"]


def test_a_mount_doctor_did_not_make_is_left_alone(run):
    second = run["second"]
    assert second["drops"]["available"], second["drops"]
    assert run["mounts_ours"] and run["mounts_after_second"] == run["mounts_ours"]
    assert not [i for i in run["instances_after_second"] if i.startswith("guestcheck-")]
