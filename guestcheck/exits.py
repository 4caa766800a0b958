"""How a guestcheck process ends: exit codes, a closed pipe that is never an error, and never a traceback.

Shared by the executable's click-free fast path (guestcheck/entry.py) and the click CLI (guestcheck/cli.py), so
that neither imports the other for them.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Callable, Optional

EXIT_UNKNOWN = 3


# --- a closed pipe (`guestcheck watch | head -1`) is never an error ---------------------------------------

class StdoutClosed(Exception):
    """The reader of standard output went away. Not an OSError, so click does not turn it into exit 1."""


_exit_code_if_stdout_closes = 0


def exit_code_if_stdout_closes(code: int) -> None:
    """doctor, facts and selftest call this with their verdict before printing it: a reader that goes away
    (`| head -1`) must not change the exit code a script tests. Every other command exits 0."""
    global _exit_code_if_stdout_closes
    _exit_code_if_stdout_closes = code


def stdout_reader_gone() -> bool:
    """True when standard output is a pipe or socket whose reader has gone: only that EPIPE is a closed pipe
    (an EPIPE from a child's pipe or a FIFO we write is an error of its own)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno() if sys.__stdout__ else 1, 0)
        return any(revents & (select.POLLERR | select.POLLHUP) for _, revents in poller.poll(0))
    except (OSError, ValueError):
        return False


def closed_stdout(e: BaseException) -> bool:
    return isinstance(e, StdoutClosed) or (
        isinstance(e, OSError) and e.errno == errno.EPIPE and stdout_reader_gone())


def silence_stdout() -> int:
    """Point fd 1 at /dev/null, so what is still buffered (and Python's flush at exit) goes nowhere instead
    of raising again ("Exception ignored ... BrokenPipeError"); the exit code for a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
    finally:
        os.close(devnull)
    return _exit_code_if_stdout_closes


# The libraries guestcheck imports, and the Debian package that has each (pyproject.toml, debian/control).
DEBIAN_PACKAGES = {
    "click": "python3-click",
    "psutil": "python3-psutil",
    "pyroute2": "python3-pyroute2",
    "pyudev": "python3-pyudev",
    "distro": "python3-distro",
}


def missing_library(e: ImportError) -> Optional[str]:
    """The one-line message for a missing third-party library, or None when `e` is something else (a bug)."""
    top = (e.name or "").split(".")[0]
    package = DEBIAN_PACKAGES.get(top)
    if not isinstance(e, ModuleNotFoundError) or package is None:
        return None
    return (f"guestcheck: the Python library {top!r} is missing: install {package} "
            f"(apt-get install {package}), or `pip install {top}` where guestcheck was installed with pip")


def guarded(run: Callable[[], int]) -> int:
    """Never a traceback: interrupts, missing libraries and bugs become one line and an exit code; a closed
    pipe becomes the verdict's exit code (doctor, facts, selftest) or 0, silently."""
    try:
        return run()
    except KeyboardInterrupt:
        print("guestcheck: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if closed_stdout(e):  # the reader went away (`guestcheck doctor | head`): not an error
            return silence_stdout()
        if os.environ.get("GUESTCHECK_DEBUG"):
            raise
        message = missing_library(e) if isinstance(e, ImportError) else None
        if message is not None:
            print(message, file=sys.stderr)
            return EXIT_UNKNOWN
        from guestcheck.text import escape_control  # only on this path: an exception's text may carry input

        print(f"guestcheck: internal error: {type(e).__name__}: {escape_control(e)} (GUESTCHECK_DEBUG=1 shows more)",
              file=sys.stderr)
        return EXIT_UNKNOWN
