"""NIC drop counters on real kernel objects: a veth pair between two namespaces we made.

- veth's `ethtool -S` (drivers/net/veth.c: peer_ifindex and per-queue XDP counters): doctor reports the same
  names and numbers as the ethtool binary, and the XDP counters stay 0 under ordinary traffic.
- rx_dropped made to rise for real: frames with an unknown ethertype, sent raw (AF_PACKET) into the veth, are
  counted by the receiving kernel as rx_dropped (net/core/dev.c __netif_receive_skb_core: no protocol handler),
  and doctor, sampling while they arrive, reports the rate. (A tbf qdisc's drops would not do: the qdisc counts
  them, not tx_dropped.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from tests.netns import guestcheck_in, netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool (apt: ethtool)")]

ETHERTYPE = 0x88B5  # IEEE 802 "local experimental": no protocol handler in any kernel
SEND_RAW = r"""
import socket, sys, time
name, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((name, 0))
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + (0x88B5).to_bytes(2, "big") + b"guestcheck" * 6
for _ in range(count):
    s.send(frame)
    time.sleep(pause)
"""

UDP_TRAFFIC = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(200):
    s.sendto(b"x" * 100, ("10.199.0.2", 9))
"""


def ethtool_s(ns, dev: str) -> dict[str, int]:
    out = ns.run(["ethtool", "-S", dev])
    stats = {}
    for line in out.stdout.splitlines()[1:]:
        name, _, value = line.strip().rpartition(": ")
        stats[name] = int(value)
    return stats


def doctor_json(ns, sample: float) -> dict:
    out = guestcheck_in(ns, "doctor", "--json", "--sample", str(sample))
    assert "Traceback" not in out.stderr and out.returncode in (0, 1, 2), out.stderr
    return json.loads(out.stdout)


def test_veth_statistics_match_ethtool_and_xdp_counters_stay_zero_under_traffic():
    with netns() as a, netns() as b, veth_pair(a, b) as (dev_a, _):
        # ordinary traffic both ways: UDP to a closed port in the peer namespace, answered by ICMP
        sent = a.run([sys.executable, "-c", UDP_TRAFFIC], check=False)
        assert sent.returncode == 0, sent.stderr
        assert int(a.run(["cat", f"/sys/class/net/{dev_a}/statistics/tx_packets"]).stdout) >= 200
        assert int(a.run(["cat", f"/sys/class/net/{dev_a}/statistics/rx_packets"]).stdout) >= 1  # ICMP, rate-limited
        doc = doctor_json(a, 0)
        shell = ethtool_s(a, dev_a)
        nic = next(n for n in doc["facts"]["nics"] if n["name"] == dev_a)
        assert nic["driver_stats"] == shell  # every name and number `ethtool -S` prints
        assert "peer_ifindex" in shell and "rx_queue_0_xdp_packets" in shell
        xdp = {k: v for k, v in shell.items() if "xdp" in k or k.endswith("_drops")}
        assert xdp and set(xdp.values()) == {0}, xdp
        [counters] = [c for c in doc["facts"]["nic_counters"] if c["nic"] == dev_a]
        assert counters["driver"] == {"rx_queue_0_drops": {"total": 0, "rise": None, "per_s": None}}
        assert counters["sampled"] is False
        sysfs = a.run(["cat", f"/sys/class/net/{dev_a}/statistics/rx_dropped",
                       f"/sys/class/net/{dev_a}/statistics/tx_errors"]).stdout.split()
        assert [counters["interface"][k]["total"] for k in ("rx_dropped", "tx_errors")] == [int(v) for v in sysfs]


def test_unknown_ethertype_frames_raise_rx_dropped_and_doctor_reports_the_rate():
    with netns() as a, netns() as b, veth_pair(a, b) as (dev_a, dev_b):
        # sends until stopped: however slowly doctor starts, frames arrive all through its window
        sender = a.popen([sys.executable, "-c", SEND_RAW, dev_a, "1000000", "0.002"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.3)  # frames are arriving before the window opens
            doc = doctor_json(b, 1.5)
            assert sender.poll() is None, sender.communicate()[1]  # still sending: it never failed
        finally:
            sender.kill()
            sender.communicate(timeout=30)
        [counters] = [c for c in doc["facts"]["nic_counters"] if c["nic"] == dev_b]
        dropped = counters["interface"]["rx_dropped"]
        assert counters["sampled"] and dropped["rise"] >= 100 and dropped["per_s"] >= 60, counters
        [finding] = [f for f in doc["findings"] if f["id"] == "NIC-DROPS" and f["subject"] == dev_b]
        assert finding["severity"] == "warning"
        assert f"rx_dropped +{dropped['rise']} ({dropped['per_s']:g}/s)" in finding["summary"]
        assert "unknown protocol" in finding["evidence"]["cause"]
        total = int(b.run(["cat", f"/sys/class/net/{dev_b}/statistics/rx_dropped"]).stdout)
        assert total >= dropped["total"] >= dropped["rise"]
        # Prometheus shows the same counter as a _total with the interface label
        prom = guestcheck_in(b, "doctor", "--format", "prometheus", "--sample", "0").stdout
        series = f'guestcheck_nic_rx_dropped_total{{interface="{dev_b}"}} '
        line = next(x for x in prom.splitlines() if x.startswith(series))
        assert int(line.rsplit(" ", 1)[1]) >= dropped["total"]
