#!/usr/bin/env python3
"""The largest facts files `doctor --facts` allows, in the worst shapes: load (or refusal) time and peak memory.

Each file is built at the bounds of guestcheck/factsfile.py (size, objects and arrays, values) in the shape
that costs most per byte: a million empty counters (refused: over the bound of objects), empty counters and
interfaces up to that bound, floats and escaped names up to the bound of values, 64 MiB of strings. Each is
built by one child process and loaded by another, which reports its CPU time and its peak resident memory
(getrusage's ru_maxrss, the interpreter included). Target: every file loads or is refused in under 5 s of
CPU and under 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from guestcheck.factsfile import MAX_FACTS_BYTES, MAX_FACTS_CONTAINERS, MAX_FACTS_VALUES  # noqa: E402

TARGET_SECONDS, TARGET_BYTES = 5.0, 1 << 30
HEAD = '{"schema":"guestcheck.facts/1",'


def million_empty_counters() -> str:
    counters = ",".join(f'"c{i}":{{}}' for i in range(1_000_000))
    return HEAD + '"nic_counters":[{"nic":"eth0","interface":{' + counters + "}}]}"


def empty_counters_at_bound() -> str:
    n = MAX_FACTS_CONTAINERS - 4  # the document, the list, the NicCounters object and its counters
    counters = ",".join(f'"c{i}":{{}}' for i in range(n))
    return HEAD + '"nic_counters":[{"nic":"eth0","interface":{' + counters + "}}]}"


def interfaces_at_bound() -> str:
    """An interface is the biggest object a facts file builds (38 fields) for the fewest bytes."""
    n = MAX_FACTS_CONTAINERS - 2
    return HEAD + '"nics":[' + ",".join(f'{{"name":"n{i}"}}' for i in range(n)) + "]}"


def escaped_names_at_bound() -> str:
    """Interfaces whose every name field holds non-UTF-8 bytes (\\xHH escapes), up to the bound of values."""
    fields = ("name", "kind_reason", "driver", "driver_sysfs", "driver_ethtool", "firmware", "bus_info")
    n = min(MAX_FACTS_CONTAINERS - 2, (MAX_FACTS_VALUES - 10) // (len(fields) + 1))
    nic = ",".join(f'"{f}":"n\\\\xff\\\\x80\\\\\\\\{{i}}"' for f in fields)
    return HEAD + '"nics":[' + ",".join("{" + nic.replace("{i}", str(i)) + "}" for i in range(n)) + "]}"


def floats_at_bound() -> str:
    """Per-CPU steal figures: each value is a key, a float the parser calls back for, and a check."""
    n = MAX_FACTS_VALUES - 10
    return HEAD + '"cpu_steal":{"per_cpu":{' + ",".join(f'"cpu{i}":{i % 100}.25' for i in range(n)) + "}}}"


def strings_at_size() -> str:
    """Notes filling the size bound, as many as the bound of values allows."""
    n = MAX_FACTS_VALUES - 10
    length = (MAX_FACTS_BYTES - 200) // n - 3
    return HEAD + '"problems":[' + ",".join(f'"{i:0{length}d}"' for i in range(n)) + "]}"


def one_string_at_size() -> str:
    return HEAD + '"problems":["' + "\U0001F600" * ((MAX_FACTS_BYTES - 100) // 4) + '"]}'


def escapes_at_size() -> str:
    """One note of 64 MiB of \\xHH escapes (13 million undecodable bytes)."""
    return HEAD + '"problems":["' + "\\\\xff" * ((MAX_FACTS_BYTES - 100) // 5) + '"]}'


def empty_arrays_at_size() -> str:
    """64 MiB of `[]`: 1.7 GiB for Python's parser; refused before it."""
    n = (MAX_FACTS_BYTES - 100) // 3
    return HEAD + '"problems":[' + ",".join(["[]"] * n) + "]}"


def over_size() -> str:
    return HEAD + '"problems":["' + "x" * MAX_FACTS_BYTES + '"]}'


def deep_nesting() -> str:
    depth = MAX_FACTS_CONTAINERS - 1
    return HEAD + '"problems":' + "[" * depth + "]" * depth + "}"


SHAPES: Dict[str, Callable[[], str]] = {
    "a million empty counters": million_empty_counters,
    "empty counters at the bound": empty_counters_at_bound,
    "interfaces at the bound": interfaces_at_bound,
    "escaped names at the bound": escaped_names_at_bound,
    "floats at the bound": floats_at_bound,
    "strings at the size bound": strings_at_size,
    "one string at the size bound": one_string_at_size,
    "escapes at the size bound": escapes_at_size,
    "empty arrays at the size bound": empty_arrays_at_size,
    "one byte over the size bound": over_size,
    "nested at the bound": deep_nesting,
}


def child(path: str) -> None:
    """Load one file, as `doctor --facts` does; print the outcome, CPU seconds and peak memory as JSON."""
    from guestcheck.factsfile import FactsFileError, load_facts_file

    start = time.process_time()
    try:
        facts = load_facts_file(path)
        outcome = f"loaded ({len(facts.nics)} interfaces)"
    except FactsFileError as e:
        outcome = f"refused: {str(e).split(': ', 1)[1][:70]}"
    cpu = time.process_time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"outcome": outcome, "cpu": cpu, "peak": peak}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--build", nargs=2, metavar=("SHAPE", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", default=[], help="only the shapes whose name holds this")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    if args.build:  # in a process of its own: a child inherits its parent's peak (ru_maxrss survives exec)
        with open(args.build[1], "w", encoding="utf-8") as f:
            f.write(SHAPES[args.build[0]]())
        return 0
    print(f"bounds: {MAX_FACTS_BYTES >> 20} MiB, {MAX_FACTS_CONTAINERS} objects and arrays, "
          f"{MAX_FACTS_VALUES} values; target < {TARGET_SECONDS:g} s CPU and < {TARGET_BYTES >> 30} GiB")
    failed: List[str] = []
    with tempfile.TemporaryDirectory(prefix="facts-load-") as tmp:
        for name in SHAPES:
            if args.only and not any(o in name for o in args.only):
                continue
            path = os.path.join(tmp, "facts.json")
            subprocess.run([sys.executable, os.path.abspath(__file__), "--build", name, path], check=True)
            size = os.path.getsize(path)
            done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", path],
                                  capture_output=True, text=True, check=False)
            os.unlink(path)
            if done.returncode != 0:
                print(f"  {name:<32} child failed: {done.stderr.strip().splitlines()[-1:]}")
                failed.append(name)
                continue
            r = json.loads(done.stdout)
            ok = r["cpu"] < TARGET_SECONDS and r["peak"] < TARGET_BYTES
            if not ok:
                failed.append(name)
            print(f"  {name:<32} {size / (1 << 20):6.1f} MiB  {r['cpu']:5.2f} s  {r['peak'] / (1 << 20):6.0f} MiB"
                  f"  {'ok ' if ok else 'OVER'}  {r['outcome']}")
    print("all within the target" if not failed else f"over the target: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
