#!/usr/bin/env python3
"""Whole-process wall time of `guestcheck doctor --json` against what an admin runs by hand.

Three commands, interleaved so machine noise hits them alike, each run N times; medians and ratios are
printed from this one run. Target: doctor within 1.5x the shell script (bench/admin_by_hand.sh).
The sampling interval is excluded (`--sample 0`): it is a deliberate wait, not start-up cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ENTRY_POINT = "import sys; from guestcheck.entry import main; sys.exit(main())"
REPO = os.path.dirname(HERE)


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--python", default=os.path.realpath(sys.executable),
                        help="interpreter binary (the real one, not a pyenv shim)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": REPO}
    # An installed guestcheck is byte-compiled (the .deb runs py3compile); do the same for the checkout,
    # whatever PYTHONDONTWRITEBYTECODE says, so the bench measures start-up and not the compiler.
    subprocess.run([args.python, "-m", "compileall", "-q", os.path.join(REPO, "guestcheck")], check=True,
                   env={k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"})
    doctor_args = ["doctor", "--json", "--sample", "0"]
    commands = {
        "bare interpreter": [args.python, "-c", "pass"],
        # what /usr/bin/guestcheck (the console-script entry point) runs
        "guestcheck doctor --json": [args.python, "-c", ENTRY_POINT, *doctor_args],
        "python3 -m guestcheck doctor": [args.python, "-m", "guestcheck", *doctor_args],
        "admin by hand (sh)": ["sh", os.path.join(HERE, "admin_by_hand.sh")],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for argv in commands.values():
        wall(argv, env)  # warm the page cache once
    for _ in range(args.runs):
        for name, argv in commands.items():
            times[name].append(wall(argv, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"interpreter: {args.python} ({sys.version.split()[0]} here), {args.runs} runs each, interleaved")
    for name, value in med.items():
        spread = f"min {min(times[name]) * 1000:.0f} / max {max(times[name]) * 1000:.0f} ms"
        print(f"  {name:<28} median {value * 1000:7.1f} ms   ({spread})")
    doctor, shell, bare = med["guestcheck doctor --json"], med["admin by hand (sh)"], med["bare interpreter"]
    print(f"doctor / admin script : {doctor / shell:.2f}x   (target <= 1.5x)")
    print(f"doctor / bare start   : {doctor / bare:.2f}x   (doctor's own cost {1000 * (doctor - bare):.0f} ms)")
    print(f"python3 -m / admin    : {med['python3 -m guestcheck doctor'] / shell:.2f}x   (runpy adds its own imports)")
    return 0 if doctor <= 1.5 * shell else 1


if __name__ == "__main__":
    sys.exit(main())
