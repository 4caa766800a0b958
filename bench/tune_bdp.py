#!/usr/bin/env python3
"""The gain of `guestcheck tune apply` on high bandwidth-delay paths, measured in one run.

Boots a Debian 12 guest under QEMU (TCG; this machine's kernel has no netem), joins two network namespaces
inside it with a veth shaped by netem (DELAY each way, RATE, and LOSS on the data direction when given), and
runs iperf3 four times per path, each on fresh namespaces: with the stock kernel defaults, after
`guestcheck tune apply throughput` (static 16 MiB ceilings), after `guestcheck tune apply wan --rate RATE --rtt RTT`
(buffers sized to the path, the kernel's CUBIC) and after the same with wan-lossy (BBR), in both namespaces.
Prints the figures and the ratios.
Targets: at 400 Mbit/s and 300 ms RTT the path-sized wan reaches >= 90 % of the rate and >= 1.5x the static
profile; at 200 ms RTT (300 and 200 Mbit/s) the static profile reaches >= 90 % and >= 1.5x the defaults. A run
with loss has no target: it shows what BBR (wan-lossy) keeps where CUBIC (wan) backs off.
A TCG guest moves a few hundred Mbit/s to a few Gbit/s over veth in total, depending on the machine's load, so
the unshaped figure is printed too: it is the ceiling of what this guest can show.

    sudo /usr/bin/python3 bench/tune_bdp.py [--runs 400mbit/150ms,300mbit/100ms,200mbit/100ms,400mbit/150ms/0.01%]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from guestcheck.quantities import parse_rate  # noqa: E402
from tests.vm import guest  # noqa: E402

LABELS = {"default": "stock kernel defaults", "throughput": "apply throughput (static)",
          "sized": "apply wan --rate --rtt (sized)", "sized-bbr": "apply wan-lossy --rate --rtt (BBR)"}


def rate_mbps(rate: str) -> float:
    try:
        return parse_rate(rate) / 1e6
    except ValueError as e:
        raise SystemExit(f"cannot read rate: {e}") from None


def report_run(run: dict, bare: float) -> tuple[list[str], bool]:
    """The run's lines and whether its targets were met."""
    shaped = rate_mbps(run["rate"])
    got = {name: s["iperf"]["received_mbps"] for name, s in run["setups"].items()}
    loss = f", {run['loss']} loss on the data direction" if run.get("loss") else ""
    lines = [f"\n== netem {run['rate']} ({shaped:.0f} Mbit/s), {run['delay_each_way']} each way "
             f"({run['rtt_ms']:.0f} ms RTT){loss}"]
    for name, s in run["setups"].items():
        m, sc = s["iperf"], s["sysctl"]
        lines.append(f"{LABELS[name]:<32}{m['received_mbps']:8.1f} Mbit/s  {100 * m['received_mbps'] / shaped:5.1f} %  "
                     f"(mean RTT {m['mean_rtt_ms']} ms, max cwnd {m['max_cwnd_bytes']} B, {m['retransmits']} "
                     f"retransmits; receiver tcp_rmem {sc['gcbrcv']['net.ipv4.tcp_rmem']}, sender tcp_wmem "
                     f"{sc['gcbsnd']['net.ipv4.tcp_wmem']}, cc {sc['gcbsnd']['net.ipv4.tcp_congestion_control']})")
        if s.get("guard", "passed") != "passed":
            lines.append(f"    memory guard: {s['guard']}")
    static, sized, default, bbr = got["throughput"], got["sized"], got["default"], got["sized-bbr"]
    lines.append(f"static / default: {static / default:.2f}x   sized / static: {sized / static:.2f}x   "
                 f"sized / default: {sized / default:.2f}x   BBR / sized: {bbr / sized:.2f}x")
    if run.get("loss"):
        lines.append("no target (random loss): the BBR row is what wan-lossy is for")
        ok = True
    elif run["rtt_ms"] >= 250:  # the 400 Mbit/s x 300 ms path: the sized setup is on trial
        ok = sized >= 0.9 * shaped and sized >= 1.5 * static
        lines.append(f"target: sized >= 90 % of the rate and >= 1.5x static: {'met' if ok else 'NOT met'}")
    else:
        ok = static >= 0.9 * shaped and static >= 1.5 * default
        lines.append(f"target: static >= 90 % of the rate and >= 1.5x default: {'met' if ok else 'NOT met'}")
    if shaped > 0.9 * bare:
        lines.append(f"note: this guest moves only {bare:.0f} Mbit/s over an unshaped veth; {shaped:.0f} Mbit/s is "
                     "at or above what it can carry, so 90 % of it is out of reach whatever the buffers")
    return lines, ok


def table(runs: list) -> list[str]:
    out = ["", "| netem rate | RTT | loss | stock defaults | apply throughput | apply wan --rate --rtt | "
               "sized / static | sized / rate | apply wan-lossy (BBR) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        got = {n: s["iperf"]["received_mbps"] for n, s in run["setups"].items()}
        shaped = rate_mbps(run["rate"])
        out.append(f"| {shaped:.0f} Mbit/s | {run['rtt_ms']:.0f} ms | {run.get('loss') or '-'} | "
                   f"{got['default']:.1f} Mbit/s | {got['throughput']:.1f} Mbit/s | {got['sized']:.1f} Mbit/s | "
                   f"{got['sized'] / got['throughput']:.2f}x | {100 * got['sized'] / shaped:.1f} % | "
                   f"{got['sized-bbr']:.1f} Mbit/s |")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="400mbit/150ms,300mbit/100ms,200mbit/100ms,400mbit/150ms/0.01%",
                   help="RATE/DELAY[/LOSS] (netem delay on each side, loss on the data direction), measured one "
                        "after another in the same guest")
    p.add_argument("--seconds", type=int, default=30, help="iperf3 -t (after --omit seconds of slow start)")
    p.add_argument("--omit", type=int, default=10)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--memory-mb", type=int, default=2048)
    args = p.parse_args()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    for r in runs:
        rate, delay, loss = ([*r.split("/"), ""])[:3]
        rate_mbps(rate)
        if not re.fullmatch(r"[0-9.]+(ms|us|s)", delay) or not re.fullmatch(r"([0-9.]+%)?", loss):
            raise SystemExit(f"cannot read {r!r}: use RATE/DELAY[/LOSS] such as 400mbit/150ms/0.01%")
    if not guest.bench_ready():
        return 2
    command = (f"python3 bench/tune_bdp_guest.py --runs {','.join(runs)} --seconds {args.seconds} "
               f"--omit {args.omit}")
    budget = 300 + len(runs) * 4 * (args.seconds + args.omit + 60)
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
    print(f"path: veth between two namespaces shaped by netem; iperf3 -Z {args.seconds} s after {args.omit} s "
          "omitted; each setup on fresh namespaces")
    print(f"unshaped veth, same guest: {bare:8.1f} Mbit/s  (the most this TCG guest can move)")
    print("netem's rate counts whole frames: TCP payload (1448 of 1514 bytes with timestamps) tops out at 95.6 % "
          "of it")
    met = []
    for run in r["runs"]:
        lines, ok = report_run(run, bare)
        print("\n".join(lines))
        met.append(ok)
    sized_apply = next((s["setups"]["sized"].get("apply_output", "") for s in r["runs"]), "")
    print("\nwhat `apply wan --rate --rtt` printed in the receiver's namespace (first run):\n" + sized_apply.rstrip())
    print("\n".join(table(r["runs"])))
    targeted = [(run["rate"], ok) for run, ok in zip(r["runs"], met) if not run.get("loss")]
    missed = [rate for rate, ok in targeted if not ok]
    print(f"\nsummary: targets met at {', '.join(rate for rate, ok in targeted if ok) or 'no rate'}"
          + (f"; NOT met at {', '.join(missed)}" if missed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
