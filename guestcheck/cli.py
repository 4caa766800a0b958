"""The command line: each command parses, makes one library call and reports.

Subcommand groups that pull in heavier code (the tuner, iperf3 self-tests, first boot) are imported
only when used, so `guestcheck doctor` at boot pays for nothing it does not run.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import sys
from typing import Any, Optional

import click

from guestcheck import __version__
from guestcheck.exits import EXIT_UNKNOWN
from guestcheck.quantities import DEFAULT_SAMPLE_SECONDS, MAX_SAMPLE_SECONDS, sample_seconds_from_text
from guestcheck.render import REPORT_FORMATS, render_for

# README "Exit codes of every command": these share doctor's codes, bad usage and bad input files are 3 (unknown)
NAGIOS_COMMANDS = ("doctor", "facts", "explain")

LAZY_COMMANDS = {
    # name: "module:attribute"
    "firstboot": "guestcheck.firstboot:firstboot_command",
    "flows": "guestcheck.flows.cli:flows_command",
    "refresh": "guestcheck.refresh:refresh_command",
    "selftest": "guestcheck.selftest.cli:selftest",
    "tune": "guestcheck.tune.cli:tune",
    "watch": "guestcheck.watch.cli:watch",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        """A closed stdout leaves every command as StdoutClosed, which click lets through (an EPIPE it would
        turn into exit 1); guestcheck.exits.guarded gives it the exit code the README promises."""
        from guestcheck.exits import StdoutClosed, closed_stdout

        try:
            return super().invoke(ctx)
        except OSError as e:
            if closed_stdout(e):
                raise StdoutClosed() from None
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, message="guestcheck %(version)s")  # works from a checkout too
def cli() -> None:
    """Why is this VM's network slow, and what can be fixed from inside."""


def _pattern_list(values: tuple[str, ...]) -> list[str]:
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def load_facts_file(path: str) -> Any:
    """A saved facts (or doctor) file, strictly checked: a damaged one is one line and exit 3, never a crash."""
    from guestcheck.factsfile import FactsFileError
    from guestcheck.factsfile import load_facts_file as load

    try:
        return load(path)
    except FactsFileError as e:
        raise click.ClickException(str(e)) from None


def collect(sample_seconds: float, drops: bool = False) -> Any:
    """The machine's facts; with `drops`, the kernel's drop reasons over the same window (doctor --drops)."""
    from guestcheck.collect.machine import collect_facts
    from guestcheck.waiting import waiting_line

    trace: Any = None
    refused = ""  # why --drops cannot sample, in one line
    if drops and os.geteuid() != 0:
        refused = "--drops needs root: tracefs and its trace instances are root's"
    elif drops and sample_seconds <= 0:
        refused = "--drops samples over doctor's window, and --sample 0 has none"
    elif drops:
        from guestcheck.roots import Roots
        from guestcheck.trace.session import DropTrace

        trace = DropTrace(Roots.from_env())
    with waiting_line(sample_seconds):
        facts = collect_facts(sample_seconds=sample_seconds, during_sample=trace)
    if trace is not None:
        facts.drops = trace.result()
    elif refused:
        from guestcheck.facts import DropReasons

        facts.drops = DropReasons(reason_unavailable=refused)
    return facts


def _doctor_format(fmt: Optional[str], as_json: bool, output: Optional[str], textfile_dir: Optional[str]) -> str:
    """--json is the old spelling of --format json; --textfile-dir only makes sense for prometheus."""
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} disagree")
    if textfile_dir is not None:
        if fmt not in (None, "prometheus") or as_json:
            raise click.UsageError("--textfile-dir writes the prometheus format only")
        if output is not None:
            raise click.UsageError("use either --output or --textfile-dir, not both")
        return "prometheus"
    return "json" if as_json else (fmt or "human")


def write_report(path: str, text: str, *, named_by_user: bool) -> None:
    """The renderers' writer (render.write_report), its OSError as one line."""
    from guestcheck.render import write_report as write
    from guestcheck.text import escape_control

    try:
        write(path, text, named_by_user=named_by_user)
    except OSError as e:
        raise click.ClickException(escape_control(f"cannot write {path}: {e.strerror or e}")) from None


class SampleSeconds(click.ParamType):
    """--sample: the same rule as the fast path in guestcheck/entry.py (NaN and infinity are not numbers
    of seconds, though float() and click.FloatRange take them)."""

    name = "seconds"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        if isinstance(value, float):  # the default
            return value
        try:
            return sample_seconds_from_text(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


sample_option = click.option(
    "--sample", "sample_seconds", type=SampleSeconds(), default=DEFAULT_SAMPLE_SECONDS,
    show_default=True, metavar="SECONDS",
    help=f"How long to sample counters (CPU steal, softnet drops, softirqs), 0 to {MAX_SAMPLE_SECONDS:g}.")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default=None,
              help="human (default), json (guestcheck.doctor/1) or prometheus (node_exporter textfile).")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the report to FILE (atomically; a device such as /dev/null or a FIFO is written into, "
                   "never replaced) instead of standard output.")
@click.option("--textfile-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Write guestcheck.prom atomically into node_exporter's textfile directory "
                   "(implies --format prometheus).")
@click.option("--facts", "facts_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Judge a saved `guestcheck facts --json` file instead of this machine.")
@click.option("--only", multiple=True, metavar="ID", help="Run only these finding ids (globs, comma-separated).")
@click.option("--skip", multiple=True, metavar="ID", help="Skip these finding ids (globs, comma-separated).")
@click.option("-v", "--verbose", is_flag=True, help="Show every finding, including ok and info.")
@click.option("--drops", is_flag=True,
              help="Also count the kernel's reason for every packet dropped during the window (root; Linux 5.17+): "
                   "a trace instance of guestcheck's own, removed when doctor ends.")
@sample_option
@click.pass_context
def doctor(ctx: click.Context, fmt: Optional[str], as_json: bool, output: Optional[str],
           textfile_dir: Optional[str], facts_file: Optional[str], only: tuple[str, ...],
           skip: tuple[str, ...], verbose: bool, drops: bool, sample_seconds: float) -> None:
    """Inspect this machine and report. Exit code as Nagios: 0 ok, 1 warning, 2 critical, 3 unknown."""
    from guestcheck.checks import unknown_ids
    from guestcheck.doctor import build_report

    fmt = _doctor_format(fmt, as_json, output, textfile_dir)
    if textfile_dir is not None and not os.path.isdir(textfile_dir):
        from guestcheck.text import escape_control

        raise click.UsageError(escape_control(
            f"--textfile-dir {textfile_dir}: no such directory (node_exporter's textfile directory: create it, "
            "or point node_exporter's --collector.textfile.directory at an existing one)"))
    only_l, skip_l = _pattern_list(only), _pattern_list(skip)
    bad = unknown_ids(only_l + skip_l)
    if bad:
        raise click.UsageError(f"unknown finding id {bad[0]!r} (see `guestcheck explain --list`)")
    if drops and facts_file:
        raise click.UsageError("--drops samples this machine; a saved facts file keeps the drops it was taken with")
    facts = load_facts_file(facts_file) if facts_file else collect(sample_seconds, drops)
    report = build_report(facts, only_l, skip_l)
    if fmt == "prometheus" and not facts_file:  # guestcheck_info's profile label: this machine's, not a file's
        from guestcheck.fleet import applied_profile
        from guestcheck.roots import Roots

        report.profile = applied_profile(Roots.from_env())
    from guestcheck.exits import exit_code_if_stdout_closes

    exit_code_if_stdout_closes(report.status.value)  # `doctor | head -1` keeps the verdict
    to_terminal = output is None and textfile_dir is None and sys.stdout.isatty()
    text = render_for(report, fmt, to_terminal=to_terminal, to_file=output is not None, verbose=verbose)
    if textfile_dir is not None:
        from guestcheck.render.prometheus import TEXTFILE_NAME

        write_report(os.path.join(textfile_dir, TEXTFILE_NAME), text, named_by_user=False)
    elif output is not None:
        write_report(output, text, named_by_user=True)
    else:
        click.echo(text, nl=False)
    ctx.exit(report.status.value)


@cli.command()
@click.option("--json", "as_json", is_flag=True, default=True, help="JSON (the only format; the default).")
@sample_option
def facts(as_json: bool, sample_seconds: float) -> None:
    """Dump the collected facts as JSON, for `guestcheck doctor --facts FILE` elsewhere."""
    from guestcheck.judge import judge
    from guestcheck.render.json import dumps, facts_document

    collected = collect(sample_seconds)
    click.echo(dumps(facts_document(collected, judge(collected))), nl=False)


@cli.command()
@click.argument("finding_id", required=False)
@click.option("--list", "list_all", is_flag=True, help="List every finding id.")
def explain(finding_id: Optional[str], list_all: bool) -> None:
    """Print what a finding means and how to fix it."""
    from guestcheck.checks import catalog

    docs = catalog()
    if list_all or not finding_id:
        for fid, doc in sorted(docs.items()):
            click.echo(f"{fid:<28} {doc.severity:<8} {doc.title}")
        return
    from guestcheck.checks import unknown_ids
    from guestcheck.text import escape_control

    patterns = _pattern_list((finding_id,))  # the same ids and globs as --only: OFFLOAD-*, nic-emulated,x
    bad = unknown_ids(patterns) if patterns else [finding_id]
    if bad:
        raise click.ClickException(escape_control(
            f"unknown finding id {bad[0]!r} (see `guestcheck explain --list`)"))
    chosen = [fid for fid in sorted(docs) if any(fnmatch.fnmatchcase(fid, p.upper()) for p in patterns)]
    texts = []
    for fid in chosen:
        doc = docs[fid]
        judged = f"\n\nJudged on:\n  {doc.judged_on}" if doc.judged_on else ""
        texts.append(f"{fid}: {doc.title}\nusual severity: {doc.severity}\n\n"
                     f"What it means:\n  {doc.why}\n\nHow to fix it:\n  {doc.fix}{judged}")
    click.echo("\n\n".join(texts))


def main(argv: Optional[list[str]] = None) -> None:
    """The click command line: one-line errors, never a traceback, Nagios-friendly codes for doctor."""
    from guestcheck.exits import guarded
    from guestcheck.output import escape_standard_streams

    escape_standard_streams()  # already in place when called from guestcheck.entry.main
    args = sys.argv[1:] if argv is None else argv
    sys.exit(guarded(lambda: _run_click(args)))


def _run_click(args: list[str]) -> int:
    try:
        rv = cli.main(args=args, prog_name="guestcheck", standalone_mode=False)
    except click.exceptions.Exit as e:  # click < 8.2 may raise instead of returning
        rv = e.exit_code
    except click.UsageError as e:
        e.show()
        nagios = e.ctx is not None and e.ctx.command.name in NAGIOS_COMMANDS
        return EXIT_UNKNOWN if nagios else 2
    except click.ClickException as e:
        e.show()
        return EXIT_UNKNOWN if args[:1] and args[0] in NAGIOS_COMMANDS else e.exit_code
    except click.Abort:
        click.echo("guestcheck: aborted", err=True)
        return 130
    except SystemExit:  # click's own answer to an EPIPE outside a command (`--help | head -1`): exit 1
        from click.utils import PacifyFlushWrapper

        from guestcheck.exits import silence_stdout

        if isinstance(sys.stdout, PacifyFlushWrapper):
            sys.stdout = sys.__stdout__
            return silence_stdout()
        raise
    return rv if isinstance(rv, int) else 0
