"""selftest's progress line on a terminal: each run's elapsed time and current rate, redrawn in place.

iperf3 3.12 (Debian 12) prints its `-J` document only when the run ends, and --json-stream (per-interval JSON)
came in 3.17, so the rate is read beside iperf3 rather than from it: the bytes its process wrote to (upload)
or read from (download) its sockets, /proc/PID/io wchar or rchar, over the last second. The control
connection adds a few hundred bytes per run. The line is erased when the run ends; --json and piped output
never see it (cli.py passes no Progress there).
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

from guestcheck.collect.fs import cat
from guestcheck.quantities import format_rate, maybe_int
from guestcheck.selftest.iperf3 import DOWNLOAD, RunSpec

ERASE = "\r\033[K"  # back to the start of the line, erase it


def io_bytes(pid: int, field: str, proc: str = "/proc") -> Optional[int]:
    """A counter from /proc/PID/io (rchar, wchar), or None when it cannot be read."""
    for line in (cat(os.path.join(proc, str(pid), "io")) or "").splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return maybe_int(value)
    return None


def _streams(n: int) -> str:
    return f"{n} stream{'s' if n != 1 else ''}"


class Progress:
    def __init__(self, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 proc: str = "/proc") -> None:
        self.write, self.clock, self.proc = write, clock, proc

    def start(self, index: int, total: int, spec: RunSpec) -> Callable[[int], None]:
        """Show the run starting; returns the tick(pid) that iperf3.run_process calls about once a second."""
        label = f"run {index}/{total}: {spec.direction}, {_streams(spec.streams)}"
        field = "rchar" if spec.direction == DOWNLOAD else "wchar"
        started = self.clock()
        last: list = []  # (bytes, time) of the previous tick
        self.write(f"{ERASE}{label}: 0 s of {spec.duration} s")

        def tick(pid: int) -> None:
            now = self.clock()
            count = io_bytes(pid, field, self.proc)
            rate = ""
            if count is not None and last and now > last[1] and count >= last[0]:
                rate = f", {format_rate(8 * (count - last[0]) / (now - last[1]))}"
            last[:] = [count, now] if count is not None else []
            self.write(f"{ERASE}{label}: {now - started:.0f} s of {spec.duration} s{rate}")

        return tick

    def finish(self) -> None:
        self.write(ERASE)
