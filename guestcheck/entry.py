"""The `guestcheck` executable.

`guestcheck doctor` runs at every boot and from monitoring every few minutes, and importing click costs
more than everything doctor does. So the plain invocations those callers use (`doctor`, `--json`,
`--format F`, `--sample S`, `-v`) are recognised here without click; anything else, including every
error and `--help`, goes to the click CLI in guestcheck/cli.py, which stays the one definition of the
command line. The fast path accepts a strict subset of what click accepts and does the same thing.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Callable, Optional

EXIT_UNKNOWN = 3
FAST_FORMATS = ("human", "json", "prometheus")


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


def fast_doctor_options(args: list[str]) -> Optional[dict]:
    """The options of a plain doctor run, or None when click must parse (or reject) the command line."""
    if not args or args[0] != "doctor":
        return None
    from guestcheck.collect.counters import DEFAULT_SAMPLE_SECONDS
    from guestcheck.quantities import sample_seconds_from_text

    options = {"fmt": "human", "sample_seconds": DEFAULT_SAMPLE_SECONDS, "verbose": False}
    rest = list(args[1:])
    seen: set[str] = set()
    while rest:
        token = rest.pop(0)
        name, eq, value = token.partition("=")
        if token == "--json":
            if "format" in seen and options["fmt"] != "json":
                return None  # click says they disagree
            options["fmt"] = "json"
            seen.add("json")
        elif token in ("-v", "--verbose"):
            options["verbose"] = True
        elif name in ("--format", "--sample"):
            if not eq:
                if not rest:
                    return None
                value = rest.pop(0)
            if name == "--format":
                if value not in FAST_FORMATS or ("json" in seen and value != "json"):
                    return None
                options["fmt"] = value
                seen.add("format")
            else:
                try:
                    options["sample_seconds"] = sample_seconds_from_text(value)
                except ValueError:
                    return None  # click says why, with doctor's exit code
        else:
            return None
    return options


def run_fast_doctor(fmt: str, sample_seconds: float, verbose: bool) -> int:
    from guestcheck.collect.machine import collect_facts
    from guestcheck.render import render_for
    from guestcheck.report import build_report
    from guestcheck.waiting import waiting_line

    with waiting_line(sample_seconds):
        facts = collect_facts(sample_seconds=sample_seconds)
    report = build_report(facts)
    if fmt == "prometheus":  # guestcheck_info's profile label
        from guestcheck.fleet import applied_profile
        from guestcheck.roots import Roots

        report.profile = applied_profile(Roots.from_env())
    exit_code_if_stdout_closes(report.status.value)
    sys.stdout.write(render_for(report, fmt, to_terminal=sys.stdout.isatty(), verbose=verbose))
    sys.stdout.flush()
    return report.status.value


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


def main(argv: Optional[list[str]] = None) -> None:
    from guestcheck.output import escape_standard_streams

    escape_standard_streams()  # every line printed passes the one escaper, whoever prints it (guestcheck/output.py)
    args = sys.argv[1:] if argv is None else list(argv)
    options = fast_doctor_options(args)
    if options is not None:
        sys.exit(guarded(lambda: run_fast_doctor(**options)))
    try:
        from guestcheck.cli import main as cli_main
    except ModuleNotFoundError as e:  # click itself
        message = missing_library(e)
        if message is None:
            raise
        print(message, file=sys.stderr)
        sys.exit(EXIT_UNKNOWN)
    cli_main(args)
