"""The `guestcheck` executable.

`guestcheck doctor` runs at every boot and from monitoring every few minutes, and importing click costs
more than everything doctor does. So the plain invocations those callers use (`doctor`, `--json`,
`--format F`, `--sample S`, `-v`) are recognised here without click; anything else, including every
error and `--help`, goes to the click CLI in guestcheck/cli.py, which stays the one definition of the
command line. The fast path accepts a strict subset of what click accepts and does the same thing.
"""

from __future__ import annotations

import sys
from typing import Optional

from guestcheck.exits import EXIT_UNKNOWN, exit_code_if_stdout_closes, guarded, missing_library

FAST_FORMATS = ("human", "json", "prometheus")


def fast_doctor_options(args: list[str]) -> Optional[dict]:
    """The options of a plain doctor run, or None when click must parse (or reject) the command line."""
    if not args or args[0] != "doctor":
        return None
    from guestcheck.quantities import DEFAULT_SAMPLE_SECONDS, sample_seconds_from_text

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
    from guestcheck.doctor import build_report
    from guestcheck.render import render_for
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
