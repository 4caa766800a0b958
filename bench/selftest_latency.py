#!/usr/bin/env python3
"""selftest's latency phase against the queue it measures (issue 24), through a router namespace.

Client a (10.198.1.1) -- router r -- server b (10.198.2.1, a plain `iperf3 -s`); r shapes both of its egresses with
tbf at 100 Mbit/s and an explicit limit (250 KB, then 1 MB). In a, the measurement runs the way selftest runs it
(guestcheck.selftest.rttprobe's Prober beside guestcheck.selftest.iperf3's run_client, idle probes first), with the
congestion control chosen per socket (iperf3 -C cubic / bbr: a child namespace may only choose `reno bbr` as its
default). In r, a sampler reads the tbf's backlog with guestcheck.collect.tc.read_tc every 10 ms, on the same
monotonic clock. Printed, per limit, congestion control and direction:
- the median added latency (loaded median - idle median) against the tbf backlog sampled over the same window,
  divided by the rate (target: within +-10 %);
- idle RTT (the probes' median) against `ping`'s median to the same peer (target: within max(0.1 ms, 10 %));
- throughput with the probes against without them, alternating (target: within 1 %).
Needs root (network namespaces), iperf3, tc and ping.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.netns import ROUTED_DOWNLINK, ROUTED_UPLINK, routed  # noqa: E402 (after the path is set)

SERVER = "10.198.2.1"
RATE_BPS = 100e6
UPLINK, DOWNLINK = ROUTED_UPLINK, ROUTED_DOWNLINK  # the router's egress towards the server, towards the client

SAMPLER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from guestcheck.collect.tc import read_tc
import socket
names = {socket.if_nametoindex(n): n for n in sys.argv[2:]}
while True:
    now = time.monotonic()
    for o in read_tc().objects:
        if o.kind == "tbf" and o.ifindex in names:
            print(f"{now:.6f} {names[o.ifindex]} {o.counters.backlog_bytes}", flush=True)
    time.sleep(0.01)
"""


def inner(args: argparse.Namespace) -> None:
    """In the client namespace: idle probes, then each run with (or without) probes beside it."""
    from guestcheck.selftest.iperf3 import RunSpec, run_client
    from guestcheck.selftest.rttprobe import Prober, choose_target

    choice = choose_target(SERVER, 5201, None, 0)  # no echo on a plain iperf3: the closed TCP port + 1
    assert choice.target is not None, choice.tried
    idle = Prober(choice.target).run_for(3.0)
    out = {"target": choice.target.describe(), "idle": idle.rtts_ms, "runs": []}
    for direction in args.directions.split(","):
        for probes in ([True, False] * args.rounds):
            spec = RunSpec(SERVER, 5201, direction, 1, args.seconds, 10.0, congestion=args.congestion)
            prober = Prober(choice.target).start() if probes else None
            t0 = time.monotonic()
            run = run_client("iperf3", spec, SERVER)
            t1 = time.monotonic()
            samples = prober.stop() if prober else None
            out["runs"].append({"direction": direction, "probes": probes, "t0": t0, "t1": t1,
                                "bps": run.throughput_bps, "congestion": run.congestion,
                                "rtts": samples.rtts_ms if samples else [], "lost": samples.lost if samples else 0})
            time.sleep(1)  # the queue drains; iperf3's server reopens its port
    print(json.dumps(out))


def ping_median(ns) -> float:
    times = ns.run(["ping", "-c", "60", "-i", "0.02", SERVER], check=False).stdout
    ms = [float(line.split("time=")[1].split()[0]) for line in times.splitlines() if "time=" in line]
    assert ms, times
    return statistics.median(ms)


def measure(limit: int, congestion: str, seconds: int, rounds: int, wire_sized: bool = True) -> list[dict]:
    rows = []
    with routed("gcbl", limit) as (a, r, b):
        if wire_sized:  # packets as a wire carries them: a veth passes 64 KB GSO packets through to the tbf
            a.run(["ethtool", "-K", "gc0", "tso", "off", "gso", "off"])
            b.run(["ethtool", "-K", "gc1", "tso", "off", "gso", "off"])
        server = b.popen(["iperf3", "-s", "-p", "5201"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed below); a pipe would fill up and stop the sampler
        sampler = r.popen([sys.executable, "-c", SAMPLER, REPO, UPLINK, DOWNLINK], stdout=log, text=True)
        try:
            time.sleep(0.5)
            ping = ping_median(a)
            env = {**os.environ, "PYTHONPATH": REPO}
            done = a.run([sys.executable, os.path.abspath(__file__), "--inner", "--congestion", congestion,
                          "--seconds", str(seconds), "--rounds", str(rounds), "--directions", "upload,download"],
                         check=False, timeout=600, env=env)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            result = json.loads(done.stdout)
        finally:
            sampler.kill()
            sampler.wait()
            log.seek(0)
            backlog_text = log.read()
            log.close()
            server.kill()
            server.wait()
    backlog = [(float(t), dev, int(n)) for t, dev, n in (line.split() for line in backlog_text.splitlines())]
    idle = statistics.median(result["idle"])
    for direction in ("upload", "download"):
        dev = UPLINK if direction == "upload" else DOWNLINK
        runs = [x for x in result["runs"] if x["direction"] == direction]
        probed = [x for x in runs if x["probes"]]
        added = statistics.median([statistics.median(x["rtts"]) - idle for x in probed])
        windows = [[n for t, d, n in backlog if d == dev and x["t0"] <= t <= x["t1"]] for x in probed]
        queue = statistics.median([statistics.median(w) for w in windows]) / (RATE_BPS / 8) * 1000
        with_p = statistics.mean(x["bps"] for x in probed)
        without = statistics.mean(x["bps"] for x in runs if not x["probes"])
        rows.append({"limit": limit, "congestion": congestion, "used": probed[0]["congestion"], "direction": direction,
                     "added_ms": added, "queue_ms": queue, "idle_ms": idle, "ping_ms": ping,
                     "probes": sum(len(x["rtts"]) for x in probed), "lost": sum(x["lost"] for x in probed),
                     "bps_with": with_p, "bps_without": without, "target": result["target"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--congestion", default="cubic")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="runs with and without probes, alternating")
    parser.add_argument("--directions", default="upload,download")
    parser.add_argument("--limits", default="250000,1000000")
    parser.add_argument("--gso", action="store_true",
                        help="leave the endpoints' TSO/GSO on: the tbf then queues 64 KB packets, and a new arrival "
                             "waits less than backlog / rate (the head packet's tokens are partly saved already)")
    args = parser.parse_args()
    if args.inner:
        inner(args)
        return
    rows = []
    for limit in (int(x) for x in args.limits.split(",")):
        for cc in ("cubic", "bbr"):
            rows += measure(limit, cc, args.seconds, args.rounds, not args.gso)
    print(f"tbf 100 Mbit/s in a router namespace; {args.seconds}s runs, {args.rounds} with probes and {args.rounds} "
          f"without, alternating; probes: {rows[0]['target']} at 25/s")
    print(f"{'limit':>8} {'cc':>5} {'dir':>8} | {'added p50':>9} {'queue':>8} {'ratio':>6} | {'idle':>6} {'ping':>6}"
          f" {'diff':>6} | {'with':>7} {'without':>7} {'ratio':>6} | probes lost")
    for x in rows:
        print(f"{x['limit'] // 1000:>6}KB {x['used']:>5} {x['direction']:>8} | {x['added_ms']:>7.2f}ms "
              f"{x['queue_ms']:>6.2f}ms {x['added_ms'] / x['queue_ms']:>6.3f} | {x['idle_ms']:>4.3f}"
              f" {x['ping_ms']:>6.3f}"
              f" {x['idle_ms'] - x['ping_ms']:>+6.3f} | {x['bps_with'] / 1e6:>7.2f} {x['bps_without'] / 1e6:>7.2f}"
              f" {x['bps_with'] / x['bps_without']:>6.4f} | {x['probes']:>6} {x['lost']:>4}")
    print("targets: added/queue 0.90-1.10; idle - ping within max(0.1 ms, 10 %); with/without 0.99-1.01")


if __name__ == "__main__":
    main()
