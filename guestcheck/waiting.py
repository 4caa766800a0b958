"""The line that says what a command is waiting for, on a terminal only: `--sample N` sleeps N seconds between
two counter readings, and a silent terminal for that long looks hung. Used by the click CLI and by the fast
doctor path (guestcheck/entry.py), so it imports nothing heavy."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator, Optional, TextIO

ERASE = "\r\033[K"  # back to the start of the line, erase it (as selftest's progress line)


@contextlib.contextmanager
def waiting_line(seconds: float, stream: Optional[TextIO] = None,
                 clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """While `--sample N` runs on a terminal, say on stderr what the wait is for, redrawn each second and erased
    at the end; nothing when stderr is not a terminal (monitoring, pipes) or nothing is sampled."""
    out = stream if stream is not None else sys.stderr
    if seconds <= 0 or not out.isatty():
        yield
        return
    import threading  # lazily: monitoring and boot runs have no terminal to draw on

    stop = threading.Event()
    started = clock()

    def draw() -> None:
        while True:
            done = min(int(clock() - started), int(seconds))
            out.write(f"{ERASE}sampling counters for {seconds:g} s (CPU steal, softirqs, drops): {done} s...")
            out.flush()
            if stop.wait(1.0):
                return

    painter = threading.Thread(target=draw, name="guestcheck-waiting", daemon=True)
    painter.start()
    try:
        yield
    finally:
        stop.set()
        painter.join()
        out.write(ERASE)
        out.flush()
