#!/usr/bin/env python3
"""guestcheck selftest against raw `iperf3 -J` on the same tbf-shaped veth path, in one run.

Two network namespaces joined by veth, both egresses shaped by tbf; one plain `iperf3 -s` serves both.
For each direction, raw `iperf3 -c ... -J [-R]` and `guestcheck selftest --json` (one single-stream run
of the same length) alternate, N rounds each, so drift on the machine hits them alike. Printed: the
throughput each reports (target: guestcheck / raw within 0.95-1.05) and the wrapper's own time: whole
process wall time against raw iperf3's, and, inside guestcheck, its total minus the iperf3 subprocess.
Needs root (network namespaces), iperf3 and tc.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.netns import netns, tbf_limit, veth_pair  # noqa: E402 (after the path is set)

SERVER = "10.199.0.2"


def timed(ns, argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    out = ns.run(argv, check=False, timeout=120, env=env)
    return time.perf_counter() - start, out


def raw_run(ns, direction: str, seconds: int, env: dict[str, str]) -> tuple[float, float]:
    argv = ["iperf3", "-c", SERVER, "-J", "-t", str(seconds)] + (["-R"] if direction == "download" else [])
    wall, out = timed(ns, argv, env)
    doc = json.loads(out.stdout)
    if doc.get("error"):
        raise SystemExit(f"raw iperf3 failed: {doc['error']}")
    return doc["end"]["sum_received"]["bits_per_second"], wall


def guestcheck_run(ns, direction: str, seconds: int, rate: str, python: str,
                   env: dict[str, str]) -> tuple[float, float, float]:
    argv = [python, "-m", "guestcheck", "selftest", "--json", "--peer", SERVER, "--expect", rate,
            "--duration", str(seconds), "--parallel", "1", "--direction", direction]
    wall, out = timed(ns, argv, env)
    doc = json.loads(out.stdout)
    if "error" in doc:
        raise SystemExit(f"guestcheck selftest failed: {doc['error']['message']}")
    inside = doc["timing"]["total_s"] - doc["timing"]["iperf3_s"]
    return doc["runs"][0]["throughput_bps"], wall, inside


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", default="200mbit", help="tbf rate on both ends (tc syntax)")
    parser.add_argument("--seconds", type=int, default=3, help="length of each iperf3 run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--python", default=os.path.realpath(sys.executable))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it makes network namespaces")
    expect = args.rate.lower().replace("mbit", "M").replace("gbit", "G").replace("kbit", "k")
    env = {**os.environ, "PYTHONPATH": REPO}
    subprocess.run([args.python, "-m", "compileall", "-q", os.path.join(REPO, "guestcheck")], check=True,
                   env={k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"})
    with netns("gcbench") as a, netns("gcbench") as b, veth_pair(a, b):
        tbf_limit(a, "gc0", args.rate)
        tbf_limit(b, "gc1", args.rate)
        server = b.popen(["iperf3", "-s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            bare, _ = timed(a, [args.python, "-c", "pass"], env)
            results = {d: {"raw_bps": [], "raw_wall": [], "gc_bps": [], "gc_wall": [], "gc_inside": []}
                       for d in ("upload", "download")}
            for round_no in range(args.rounds):
                for direction, r in results.items():
                    order = ("raw", "gc") if round_no % 2 == 0 else ("gc", "raw")
                    for which in order:
                        if which == "raw":
                            bps, wall = raw_run(a, direction, args.seconds, env)
                            r["raw_bps"].append(bps)
                            r["raw_wall"].append(wall)
                        else:
                            bps, wall, inside = guestcheck_run(a, direction, args.seconds, expect, args.python, env)
                            r["gc_bps"].append(bps)
                            r["gc_wall"].append(wall)
                            r["gc_inside"].append(inside)
        finally:
            server.kill()
            server.wait()
    print(f"path: veth between two namespaces, tbf {args.rate} both ways; {args.rounds} rounds of "
          f"{args.seconds}s single-stream runs per direction, raw and guestcheck interleaved")
    print(f"interpreter start-up (bare `python -c pass` in the namespace): {bare * 1000:.0f} ms")
    ok = True
    for direction, r in results.items():
        med = {k: statistics.median(v) for k, v in r.items()}
        ratio = med["gc_bps"] / med["raw_bps"]
        ok &= 0.95 <= ratio <= 1.05
        print(f"{direction}:")
        print(f"  throughput  raw iperf3 -J   median {med['raw_bps'] / 1e6:8.2f} Mbit/s   "
              f"({', '.join(f'{x / 1e6:.2f}' for x in r['raw_bps'])})")
        print(f"              guestcheck      median {med['gc_bps'] / 1e6:8.2f} Mbit/s   "
              f"({', '.join(f'{x / 1e6:.2f}' for x in r['gc_bps'])})")
        print(f"              guestcheck / raw = {ratio:.3f}   (target 0.95-1.05)")
        extra = med["gc_wall"] - med["raw_wall"]
        print(f"  wall time   raw {med['raw_wall']:.3f} s, guestcheck {med['gc_wall']:.3f} s: "
              f"+{extra * 1000:.0f} ms ({med['gc_wall'] / med['raw_wall']:.3f}x); of which inside guestcheck "
              f"besides iperf3: {med['gc_inside'] * 1000:.0f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
