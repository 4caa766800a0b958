"""Which of some named programs run now, from /proc/PID/comm: one pass over /proc for every name asked."""

from __future__ import annotations

import os
from typing import Iterable, Optional, Set

from guestcheck.collect.fs import cat, listdir
from guestcheck.quantities import is_digits

COMM_LEN = 15  # the kernel keeps 15 bytes of a task's name (TASK_COMM_LEN 16, with the NUL)


def running(roots_proc: str, names: Iterable[str]) -> Optional[Set[str]]:
    """The names (as asked) that have a process; None when /proc lists no processes at all (not mounted, or
    another PID namespace's view with nothing in it). Long names match their 15-byte comm."""
    wanted = {name[:COMM_LEN]: name for name in names}
    pids = [p for p in listdir(roots_proc) if is_digits(p)]
    if not pids:
        return None
    found: Set[str] = set()
    for pid in pids:
        comm = cat(os.path.join(roots_proc, pid, "comm"))
        if comm in wanted:
            found.add(wanted[comm])
            if len(found) == len(wanted):
                break
    return found
