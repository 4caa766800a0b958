"""iperf3 dies with guestcheck: a child asks the kernel for SIGKILL when its parent goes (PR_SET_PDEATHSIG).

Cleaning up in a `finally` covers SIGTERM, SIGHUP and Ctrl-C, but not SIGKILL, nor an SSH session torn
down so hard that Python never runs again; a server left listening on all addresses then serves anyone
until the next reboot. The death signal survives exec and setsid (start_new_session), so the child stays
its own process group, which the hard limits kill as a whole.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from typing import Callable, Optional

PR_SET_PDEATHSIG = 1


def _libc_prctl() -> Optional[Callable[..., int]]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):  # not glibc/Linux: the finally-blocks are all there is
        return None


def die_with_parent(parent: Optional[int] = None) -> Optional[Callable[[], None]]:
    """A preexec_fn for Popen: SIGKILL this child when the calling thread's process dies.

    Loaded in the parent, so the child (between fork and exec) only makes two system calls. If the parent
    died before prctl took effect, the child has been reparented already: it exits instead of running.
    Popen must be called from a thread that lives as long as the child (the kernel ties the signal to the
    creating thread): the main thread here. `parent` is the pid the child must have as its parent (this
    process unless a test says otherwise).
    """
    prctl = _libc_prctl()
    if prctl is None:
        return None
    expected = os.getpid() if parent is None else parent

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != expected:
            os._exit(1)

    return preexec
