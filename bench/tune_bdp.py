#!/usr/bin/env python3
"""The gain of `guestcheck tune apply throughput` on a high bandwidth-delay path, measured in one run.

Boots a Debian 12 guest under QEMU (TCG; this machine's kernel has no netem), joins two network namespaces
inside it with a veth shaped by netem (DELAY each way, RATE), and runs iperf3 with the stock kernel defaults,
then again after `guestcheck tune apply throughput` in both namespaces. Prints the figures and the ratios.
Target: tuned >= 90 % of the shaped rate and >= 1.5x the default. A TCG guest moves a few hundred Mbit/s over
veth in total, so the unshaped figure is printed too: it is the ceiling of what this guest can show.

    sudo /usr/bin/python3 bench/tune_bdp.py [--rate 300mbit] [--delay 100ms] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.vm import guest  # noqa: E402


def rate_mbps(rate: str) -> float:
    m = re.fullmatch(r"([0-9.]+)\s*([kmg]?)bit", rate.lower())
    if not m:
        raise SystemExit(f"cannot read rate {rate!r} (use e.g. 300mbit)")
    return float(m.group(1)) * {"k": 1e-3, "m": 1.0, "g": 1e3, "": 1e-6}[m.group(2)]


def report_run(run: dict, bare: float) -> bool:
    shaped = rate_mbps(run["rate"])
    default, tuned = run["default"]["received_mbps"], run["tuned"]["received_mbps"]
    print(f"\n== netem rate {run['rate']} each way ({shaped:.0f} Mbit/s)")
    for label, key in (("stock kernel defaults:", "default"), ("after tune apply throughput:", "tuned")):
        m, sc = run[key], run[f"sysctl_{key}"]
        print(f"{label:<30}{m['received_mbps']:8.1f} Mbit/s  (mean RTT {m['mean_rtt_ms']} ms, max cwnd "
              f"{m['max_cwnd_bytes']} B, {m['retransmits']} retransmits; receiver tcp_rmem "
              f"{sc['gcbrcv']['net.ipv4.tcp_rmem']}, sender tcp_wmem {sc['gcbsnd']['net.ipv4.tcp_wmem']})")
    print(f"memory guard:                 {run['guard']}")
    print(f"tuned / default:              {tuned / default:8.2f}x   (target >= 1.5x)")
    print(f"tuned / shaped rate:          {100 * tuned / shaped:8.1f} %  (target >= 90 %)")
    print(f"default / shaped rate:        {100 * default / shaped:8.1f} %")
    ok = tuned >= 1.5 * default and tuned >= 0.9 * shaped
    if shaped > 0.9 * bare:
        print(f"note: this guest moves only {bare:.0f} Mbit/s over an unshaped veth; {shaped:.0f} Mbit/s is at or "
              "above what it can carry, so 90 % of it is out of reach whatever the buffers")
    print("targets met" if ok else "targets NOT met")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="300mbit,200mbit",
                   help="netem rates to measure, one after another in the same guest (default 300mbit,200mbit)")
    p.add_argument("--delay", default="100ms", help="netem delay on each side (default 100ms: 200 ms RTT)")
    p.add_argument("--seconds", type=int, default=20, help="iperf3 -t (after --omit seconds of ramp-up)")
    p.add_argument("--omit", type=int, default=5)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--memory-mb", type=int, default=2048)
    args = p.parse_args()
    rates = [r.strip() for r in args.rates.split(",") if r.strip()]
    for r in rates:
        rate_mbps(r)
    reason = guest.skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    guest.ensure_image()
    command = (f"python3 bench/tune_bdp_guest.py --rates {','.join(rates)} --delay {args.delay} "
               f"--seconds {args.seconds} --omit {args.omit}")
    budget = 240 + len(rates) * 2 * (args.seconds + args.omit + 40)
    result = guest.run_in_guest(command, cpus=args.cpus, memory_mb=args.memory_mb, timeout=budget)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("TUNE-BDP-RESULT ")), None)
    if result.exit_code != 0 or line is None:
        print(f"guest run failed (exit {result.exit_code}):\n{result.stderr}\n{guest._tail(result.serial_log)}",
              file=sys.stderr)
        return 1
    r = json.loads(line.split(" ", 1)[1])
    bare = r["unshaped"]["received_mbps"]
    print(f"guest: Debian 12 under QEMU TCG, {args.cpus} vCPU, {args.memory_mb} MiB, kernel {r['kernel']}; "
          f"booted in {result.boot_seconds:.0f} s, whole run {result.wall_seconds:.0f} s wall")
    print(f"path: veth between two namespaces, netem delay {r['delay_each_way']} each way; iperf3 "
          f"{args.seconds} s after {args.omit} s omitted")
    print(f"unshaped veth, same guest:    {bare:8.1f} Mbit/s  (the most this TCG guest can move)")
    met = [report_run(run, bare) for run in r["runs"]]
    print(f"\nsummary: targets met at {', '.join(run['rate'] for run, ok in zip(r['runs'], met) if ok) or 'no rate'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
