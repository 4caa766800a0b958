"""A DropTrace window in a process of its own, for the live tests and the bench.

Run it under `unshare -m --propagation private` so that the tracefs mount it may make stays in its own mount
namespace (the host's is never changed by a test). It prints "READY" once sampling (or its failure) has begun,
ends the window at a line on stdin (or at --seconds), and prints one JSON document: the result, whether tracefs was
mounted before, during and after, and the instances seen during the window.

    unshare -m --propagation private python3 tests/live/droptrace_child.py [--seconds N] [--cap N] [--ro]

--ro mounts tracefs read-only (a read-only bind of a rw mount: the superblock is shared, only this mount is ro)
before the trace starts, for the read-only case.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from guestcheck.mountinfo import read_mountinfo
from guestcheck.trace import tracefs
from guestcheck.trace.session import DropTrace


def tracefs_points() -> list:
    return [m.mount_point for m in read_mountinfo() if m.fstype == "tracefs"]


def main() -> int:
    # the tests are about a process whose signals do what they do by default; a run started from a background job
    # or under nohup would inherit SIGINT and SIGHUP ignored, and the tracer rightly leaves an ignored signal so
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = sys.argv[1:]
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else None
    cap = int(args[args.index("--cap") + 1]) if "--cap" in args else None
    if "--ro" in args:
        subprocess.run(["mount", "-t", "tracefs", "nodev", tracefs.TRACING_DIR], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", tracefs.TRACING_DIR], check=True)
    before = tracefs_points()
    trace = DropTrace(cap_per_second=cap) if cap is not None else DropTrace()
    with trace:
        during = tracefs_points()
        instances = []
        point = tracefs.find_tracefs(read_mountinfo())
        if point is not None:
            instances = sorted(os.listdir(os.path.join(point.mount_point, "instances")))
        print("READY", flush=True)
        ready, _, _ = select.select([sys.stdin], [], [], seconds if seconds is not None else 600)
        if ready:
            sys.stdin.readline()
    result = trace.result()
    print(json.dumps({"result": dataclasses.asdict(result), "before": before, "during": during,
                      "after": tracefs_points(), "instances": instances, "removed": trace.removed_leftovers,
                      "notes": trace.notes, "pid": os.getpid()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
