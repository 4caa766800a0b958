"""`doctor --drops` and `watch --drops` on the real kernel, in namespaces we make: the reasons named and counted
for the packets dropped on purpose, each placed on its ledger row and finding (FIREWALL-DROPS for an nft drop,
which no counter shows), the trace instance gone afterwards, and the one-line answers where it cannot sample."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.live.dropscenarios import tracefs_shell
from tests.netns import Netns, guestcheck_in, netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns]
PACKETS = 1000
SEND = ("import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for _ in range(int(sys.argv[2])):\n    s.sendto(b'x' * 16, ('127.0.0.1', int(sys.argv[1])))\n")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def doctor_drops(ns: Netns, port: int, *args: str) -> subprocess.CompletedProcess:
    """doctor --drops over a 3 s window in `ns`, with PACKETS datagrams to `port` sent one second in."""
    proc = ns.popen([sys.executable, "-m", "guestcheck", "doctor", "--drops", "--sample", "3", *args],
                    env={**os.environ, "PYTHONPATH": REPO}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    ns.run(["python3", "-c", SEND, str(port), str(PACKETS)])
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def ours_left() -> list:
    return [i for i in tracefs_shell("ls instances").split() if i.startswith("guestcheck-")]


def test_a_closed_port_is_no_socket_on_the_udp_row_and_the_instance_is_gone():
    with netns("gcdrop") as a:
        doc = json.loads(doctor_drops(a, 9, "--json").stdout)
    reasons = {r["reason"]: r for r in doc["drops"]["reasons"]}
    assert reasons["NO_SOCKET"]["count"] >= PACKETS * 0.95, reasons
    assert (reasons["NO_SOCKET"]["ledger_layer"], reasons["NO_SOCKET"]["ledger_counter"],
            reasons["NO_SOCKET"]["finding"]) == ("udp", "UdpNoPorts", "UDP-NO-PORT")
    assert doc["drops"]["machine_wide"] and doc["facts"]["drops"]["available"]
    row = next(r for r in doc["ledger"]["rows"] if r["counter"] == "UdpNoPorts")
    assert row["rise"] == PACKETS  # the namespace's own counter agrees
    assert ours_left() == []


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (Debian: nftables, in tests/system-packages.txt)")
def test_an_nft_drop_moves_no_counter_and_is_a_firewall_finding_of_its_own():
    with netns("gcdrop") as a:
        a.run(["nft", "add", "table", "inet", "gcdrop"])
        a.run(["nft", "add chain inet gcdrop input { type filter hook input priority 0; policy accept; }"])
        a.run(["nft", "add", "rule", "inet", "gcdrop", "input", "udp", "dport", "4242", "drop"])
        out = doctor_drops(a, 4242, "--json")
    doc = json.loads(out.stdout)
    firewall = next(f for f in doc["findings"] if f["id"] == "FIREWALL-DROPS")
    assert firewall["evidence"]["count"] >= PACKETS * 0.95 and "nft list ruleset" in firewall["hint"]
    assert "machine-wide" in firewall["summary"] and firewall["subject"] == "machine"
    moved = [r for r in doc["ledger"]["rows"] if r["layer"] in ("ip", "udp") and r["rise"]]
    assert not [r for r in moved if r["counter"] in ("UdpNoPorts", "UdpInErrors", "IpInDiscards")], moved


def test_prometheus_gets_the_reasons_only_with_drops():
    with netns("gcdrop") as a:
        with_drops = doctor_drops(a, 9, "--format", "prometheus").stdout
        without = guestcheck_in(a, "doctor", "--format", "prometheus", "--sample", "0").stdout
    assert 'guestcheck_drop_reason_packets{reason="NO_SOCKET"}' in with_drops
    assert "guestcheck_drop_reason" not in without


def test_where_it_cannot_sample_it_says_so_in_one_line_and_keeps_the_counters():
    with netns("gcdrop") as a:
        none = guestcheck_in(a, "doctor", "--drops", "--sample", "0")
        assert "drop reasons: not sampled: --drops samples over doctor's window" in none.stdout
        nobody = guestcheck_in(a, "doctor", "--drops", "--sample", "1", "--json",
                               wrap=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        doc = json.loads(nobody.stdout)
        assert doc["drops"]["reason_unavailable"].startswith("--drops needs root") and doc["ledger"]["rows"]
        refused = guestcheck_in(a, "doctor", "--drops", "--facts", "/dev/null")
        assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr
        assert "Error: --drops samples this machine" in refused.stderr  # click's usage error, as for every option


def test_watch_shows_the_reasons_live_and_gives_the_instance_back():
    with netns("gcdrop") as a:
        proc = a.popen([sys.executable, "-m", "guestcheck", "watch", "--drops", "--interval", "1", "--count", "3"],
                       env={**os.environ, "PYTHONPATH": REPO}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
        time.sleep(1.3)
        a.run(["python3", "-c", SEND, "9", str(PACKETS)])
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "drop reasons (machine-wide): NO_SOCKET +" in out, out
    assert ours_left() == []
