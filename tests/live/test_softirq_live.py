"""Softnet counters on the real kernel while iperf3 loads a veth pair between two namespaces we made."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from tests.netns import guestcheck_in, netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3 (apt: iperf3)")]


def softirq_facts(ns, seconds: float) -> dict:
    out = guestcheck_in(ns, "facts", "--sample", str(seconds))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)["softirq"]


def totals(s: dict) -> tuple[float, float]:
    return (sum(c["processed_per_s"] for c in s["cpus"]), sum(c["net_rx_per_s"] or 0 for c in s["cpus"]))


def test_softnet_rates_rise_under_iperf3_load() -> None:
    with netns() as a, netns() as b, veth_pair(a, b, a_addr="10.199.0.1/24", b_addr="10.199.0.2/24"):
        idle = softirq_facts(a, 1.0)
        with open("/sys/devices/system/cpu/online") as f:
            online = f.read().strip()
        assert len(idle["cpus"]) == len(set(_cpus(online)))  # every online CPU has a softnet row
        assert idle["row_mapping"] in ("cpu-column", "online-order")
        server = b.popen(["iperf3", "-s", "-1", "-B", "10.199.0.2"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            client = a.popen(["iperf3", "-c", "10.199.0.2", "-t", "6", "-J"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            time.sleep(1.5)
            rx_before, t0 = rx_packets(b, "gc1"), time.monotonic()
            loaded = softirq_facts(a, 2.0)
            veth_rate = (rx_packets(b, "gc1") - rx_before) / (time.monotonic() - t0)
            report, err = client.communicate(timeout=30)
        finally:
            server.kill()
            server.wait()
        assert client.returncode == 0, err
        sent = json.loads(report)["end"]["sum_received"]["bytes"]
        processed, net_rx = totals(loaded)
        idle_processed, _ = totals(idle)
        print(f"\niperf3 moved {sent / 1e6:.0f} MB; softnet processed {processed:.0f}/s under load "
              f"(idle {idle_processed:.0f}/s), NET_RX {net_rx:.0f}/s, per CPU "
              + ", ".join(f"cpu{c['cpu']} {c['processed_per_s']:.0f}/s" for c in loaded["cpus"])
              + f"; gc1 received {veth_rate:.0f} packets/s")
        assert sent > 10_000_000
        # Every packet gc1 receives goes through a CPU's backlog once (softnet is machine-wide, so other
        # traffic only adds). The window around `facts` is longer than its sample: allow for that.
        assert processed > 1000 and processed >= 0.5 * veth_rate
        assert net_rx > 0
        # the veth pair's own receive queue is reported, with its RPS mask
        (gc0,) = [n for n in loaded["nics"] if n["nic"] == "gc0"]
        assert gc0["rx_queues"] >= 1 and "rx-0" in gc0["rps_cpus"]


def rx_packets(ns, dev: str) -> int:
    return int(ns.run(["cat", f"/sys/class/net/{dev}/statistics/rx_packets"]).stdout)


def _cpus(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out
