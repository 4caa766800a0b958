#!/usr/bin/env python3
"""doctor's NIC statistics on 500 interfaces against the shell tools that read the same, in one run.

A network namespace made here holds 250 veth pairs (500 interfaces, each with `ethtool -S` counters and sysfs
statistics). Interleaved runs, medians printed:
- `guestcheck doctor --sample 0` (human output, and --json, --format prometheus): everything doctor does,
  statistics included;
- the shell tools: `ethtool -S` for each interface plus `cat` of its six sysfs drop counters, in one sh.
Target: doctor at most half the shell tools' time, and under 1 s. The sampling window is a deliberate wait and
is left out; its cost is reported apart: `--sample 1` minus one second, against `--sample 0`.
Needs root (ip netns). Nothing outside the namespace is touched; it is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTERS = ("rx_dropped", "rx_missed_errors", "rx_fifo_errors", "rx_over_errors", "tx_dropped", "tx_errors")
SHELL = ('for d in /sys/class/net/*; do n=${d##*/}; ethtool -S "$n"; '
         'cat ' + " ".join(f'"$d/statistics/{c}"' for c in COUNTERS) + '; done')


CPU: dict[str, list[float]] = {}  # command -> CPU seconds (user + system) of each run, children included


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall(argv: list[str], env: dict[str, str], name: str = "") -> float:
    """Wall time of one run; its CPU time goes to CPU[name]: on a machine other work is loading, CPU time
    is the steadier figure."""
    cpu, start = _cpu(), time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    elapsed = time.perf_counter() - start
    if name:
        CPU.setdefault(name, []).append(_cpu() - cpu)
    return elapsed


def make_namespace(pairs: int) -> str:
    name = f"gcbench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".batch") as batch:
        batch.write("".join(f"link add va{i} type veth peer name vb{i}\n" for i in range(pairs)))
        batch.flush()
        subprocess.run(["ip", "-n", name, "-batch", batch.name], check=True)
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=250, help="veth pairs (two interfaces each)")
    parser.add_argument("--python", default=os.path.realpath(sys.executable))
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": REPO}
    subprocess.run([args.python, "-m", "compileall", "-q", os.path.join(REPO, "guestcheck")], check=True,
                   env={k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"})
    ns = make_namespace(args.pairs)
    try:
        inside = ["ip", "netns", "exec", ns]
        count = len(subprocess.run([*inside, "ls", "/sys/class/net"], capture_output=True, text=True,
                                   check=True).stdout.split())
        doctor = [*inside, args.python, "-m", "guestcheck", "doctor"]
        commands = {
            "doctor --sample 0": [*doctor, "--sample", "0"],
            "doctor --sample 0 --json": [*doctor, "--sample", "0", "--json"],
            "doctor --sample 0 --format prometheus": [*doctor, "--sample", "0", "--format", "prometheus"],
            "shell: ethtool -S + cat statistics": [*inside, "sh", "-c", SHELL],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        for argv in commands.values():
            wall(argv, env)  # warm the page cache
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(wall(argv, env, name))
        sampled = [wall([*doctor, "--sample", "1"], env) for _ in range(3)]
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{count} interfaces ({args.pairs} veth pairs) in a namespace; {args.runs} interleaved runs, medians; "
          f"load average {load} on {os.cpu_count()} CPUs")
    for name, value in med.items():
        print(f"  {name:<40} wall {value * 1000:6.0f} ms (min {min(times[name]) * 1000:.0f}, "
              f"max {max(times[name]) * 1000:.0f})   CPU {cpu[name] * 1000:6.0f} ms")
    shell, shell_cpu = med["shell: ethtool -S + cat statistics"], cpu["shell: ethtool -S + cat statistics"]
    for name in ("doctor --sample 0", "doctor --sample 0 --json", "doctor --sample 0 --format prometheus"):
        ok = med[name] <= shell / 2 and med[name] < 1.0
        print(f"{name} / shell tools: wall {med[name] / shell:.2f}x, CPU {cpu[name] / shell_cpu:.2f}x  "
              f"(target <= 0.50x and < 1 s wall: {'met' if ok else 'MISSED'})")
    beyond = statistics.median(sampled) - 1.0
    print(f"--sample 1: {statistics.median(sampled) * 1000:.0f} ms, {beyond * 1000:.0f} ms beyond the 1 s window "
          f"({(beyond - med['doctor --sample 0']) * 1000:+.0f} ms against --sample 0: the second reading)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
