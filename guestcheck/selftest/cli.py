"""`guestcheck selftest`: the click edge. It parses, makes one library call, and reports.

Every fault leaves as a one-line error with its own exit code (guestcheck.selftest.errors), including
click's own usage errors, which would otherwise print three lines and exit 2 (the "far below" verdict).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import click
from click.core import ParameterSource

from guestcheck.clitypes import DurationType, WholeType
from guestcheck.quantities import parse_rate
from guestcheck.selftest import errors
from guestcheck.selftest.errors import SelftestError
from guestcheck.selftest.iperf3 import MAX_STREAMS
from guestcheck.selftest.untrusted import printable


class SelftestCommand(click.Command):
    """Usage errors become one-line errors with selftest's BAD_INPUT code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click's parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            # the bad value is echoed: keep it one short, printable line however long or odd it was
            message = f"{printable(e.format_message(), 400)} (see `guestcheck selftest --help`)"
            error = SelftestError(errors.BAD_INPUT, message)
            if "--json" in given and "--serve" not in given:  # --json promises a document, even for this
                _print_error_document(error)
            raise _fail(error) from None


def _print_error_document(error: SelftestError) -> None:
    from guestcheck.render.json import dumps
    from guestcheck.selftest.document import error_document

    _echo_before_fault(dumps(error_document(error)))


def _echo_before_fault(text: str) -> None:
    """What stdout gets before a fault's one line on stderr; a reader that went away (`| head -1`) must not
    take that line, or the fault's exit code, with it."""
    from guestcheck.exits import closed_stdout, silence_stdout

    try:
        click.echo(text, nl=False)
    except OSError as e:
        if not closed_stdout(e):
            raise
        silence_stdout()


def _fail(error: SelftestError) -> click.ClickException:
    """The one line an error prints: its message names interfaces, peers and doctor's text, so it is escaped."""
    from guestcheck.text import escape_control

    exc = click.ClickException(escape_control(error.message))
    exc.exit_code = error.code
    return exc


class RateType(click.ParamType):
    name = "RATE"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_rate(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


CLIENT_ONLY = ("peer", "duration", "parallel", "direction", "expect", "save", "compare", "latency_target",
               "no_latency", "probe_port", "congestion")
SERVER_ONLY = ("bind", "once", "time_limit")


@click.command(cls=SelftestCommand)
@click.option("--peer", metavar="HOST[:PORT]", help="The peer running `iperf3 -s` or `guestcheck selftest --serve`. "
              "IPv6: [ADDR]:PORT.")
@click.option("--serve", is_flag=True, help="Be the peer: run the iperf3 server.")
@click.option("--port", type=WholeType(1, 65535), metavar="PORT", help="Port to connect to or serve on (default 5201).")
@click.option("--duration", type=DurationType(1, 3600, whole=True), default="5", show_default=True,
              help="Length of each run (10, 10s, 2m).")
@click.option("--parallel", type=WholeType(1, MAX_STREAMS), default=4, show_default=True, metavar="N",
              help="Also run with N parallel streams (1: single stream only).")
@click.option("--direction", type=click.Choice(["both", "upload", "download"]), default="both", show_default=True,
              help="upload: this machine sends; download: the peer sends (iperf3 -R).")
@click.option("--expect", type=RateType(), help="Expected rate (1G, 100M, 250k). Default: the link speed of the NIC "
              "carrying the route to the peer, when it is a physical NIC or an SR-IOV VF.")
@click.option("--timeout", type=DurationType(0.1, 3600), default="10", show_default=True,
              help="Give up on a peer that does not answer for this long.")
@click.option("--json", "as_json", is_flag=True, help="Print the guestcheck.selftest/1 document.")
@click.option("--save", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also save the document (atomic; a device or FIFO is written into, never replaced).")
@click.option("--compare", type=click.Path(dir_okay=False), metavar="FILE",
              help="Show before/after against a saved document.")
@click.option("--latency-target", type=DurationType(0.0001, 60), default="30ms", show_default=True,
              metavar="DURATION", help="Latency added under load (p90) above which the result fails (exit 4): "
              "30ms, 0.05 (seconds).")
@click.option("--no-latency", is_flag=True, help="Skip the latency phase (idle and loaded round trips).")
@click.option("--probe-port", type=WholeType(1, 65535), metavar="PORT",
              help="Closed TCP port of the peer the latency probes connect to (answered by a RST; default: port + 1).")
@click.option("--echo-port", type=WholeType(0, 65535), metavar="PORT",
              help="UDP latency echo: with --serve the port it listens on (default: port + 1; 0: none); as a client "
              "the port --serve announced (tried before --probe-port).")
@click.option("--congestion", type=click.Choice(["bbr", "cubic", "reno"]), metavar="NAME",
              help="TCP congestion control for every run (iperf3 -C; both ends): bbr, cubic, reno.")
@click.option("--bind", metavar="ADDR", help="--serve: listen on this address only.")
@click.option("--once", is_flag=True, help="--serve: stop after one client session.")
@click.option("--time-limit", type=DurationType(0.1, 7 * 86400, zero_is_off=True), metavar="SECONDS",
              help="--serve: stop after this long (default 10m; 0: no limit).")
@click.pass_context
def selftest(ctx: click.Context, peer: Optional[str], serve: bool, port: Optional[int], duration: int,
             parallel: int, direction: str, expect: Optional[float], timeout: float, as_json: bool,
             save: Optional[str], compare: Optional[str], latency_target: float, no_latency: bool,
             probe_port: Optional[int], echo_port: Optional[int], congestion: Optional[str], bind: Optional[str],
             once: bool, time_limit: Optional[float]) -> None:
    """Measure throughput and latency to a peer with iperf3, and judge them against line rate.

    Exit codes: 0 near line rate, 1 below, 2 far below; 4 near line rate but the latency added under load is
    over --latency-target; 10 unreachable, 11 refused, 12 server busy, 13 peer went away mid-test,
    14 name does not resolve, 15 bad input, 16 iperf3 missing, 17 NIC speed unknown (pass --expect),
    18 other iperf3 failure, 19 --save/--compare file error; 20 near line rate but no port answered the
    latency probes (give --probe-port or --echo-port, or --no-latency).
    """
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    try:
        if serve:
            _check_mode(given, CLIENT_ONLY, "--serve")
            _serve(bind, port, once, time_limit, timeout, echo_port)
            return
        if not peer:
            raise SelftestError(errors.BAD_INPUT, "give --peer HOST[:PORT] to test against, or --serve to be the peer")
        _check_mode(given, SERVER_ONLY, "--peer")
        from guestcheck.selftest.measure import LatencyPlan

        latency = None if no_latency else LatencyPlan(latency_target * 1000, probe_port, echo_port)
        code = _client(peer, port, duration, parallel, direction, expect, timeout, as_json, save, compare,
                       latency, congestion or "")
    except SelftestError as e:
        if as_json and not serve:
            _print_error_document(e)
        elif e.runs:
            from guestcheck.selftest.render import render_finished_runs

            _echo_before_fault(render_finished_runs([r.to_dict() for r in e.runs]))
        raise _fail(e) from None
    ctx.exit(code)


def _check_mode(given: set[str], forbidden: tuple[str, ...], mode: str) -> None:
    wrong = [name for name in forbidden if name in given]
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        raise SelftestError(errors.BAD_INPUT, f"{flag} does not go with {mode}")


def _client(peer_text: str, port: Optional[int], duration: int, parallel: int, direction: str,
            expect: Optional[float], timeout: float, as_json: bool, save: Optional[str],
            compare: Optional[str], latency: Any = None, congestion: str = "") -> int:
    from guestcheck.selftest import document
    from guestcheck.selftest.peer import DEFAULT_PORT, parse_peer
    from guestcheck.selftest.session import Plan, run_selftest

    peer = parse_peer(peer_text, port or DEFAULT_PORT)
    if port is not None and peer.port != port:
        raise SelftestError(errors.BAD_INPUT, f"--port {port} disagrees with the port in --peer {peer_text}")
    before = document.load(compare) if compare else None  # a bad file fails before a long test
    directions = ("upload", "download") if direction == "both" else (direction,)
    if latency is not None and peer.port in (latency.probe_port, latency.echo_port):
        raise SelftestError(errors.BAD_INPUT, f"the latency probes never use the iperf3 port {peer.port}: give "
                                              "--probe-port/--echo-port another port")
    plan = Plan(peer, duration, parallel, directions, timeout, expect, latency, congestion)
    doc = document.to_document(run_selftest(plan, progress=_progress(as_json)))
    if before is not None and compare is not None:
        doc["compare"] = document.compare(before, doc, compare)
    if save:
        document.save(save, doc)
    from guestcheck.exits import exit_code_if_stdout_closes

    exit_code_if_stdout_closes(int(doc["exit_code"]))  # `selftest | head -1` keeps the verdict
    if as_json:
        from guestcheck.render.json import dumps

        click.echo(dumps(doc), nl=False)
    else:
        from guestcheck.selftest.render import render

        click.echo(render(doc, colour=sys.stdout.isatty() and "NO_COLOR" not in os.environ), nl=False)
    return int(doc["exit_code"])


def _progress(as_json: bool) -> Any:
    """A progress line on a terminal only: --json and piped output stay exactly as they were."""
    if as_json or not sys.stdout.isatty():
        return None
    from guestcheck.selftest.progress import Progress

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    return Progress(write)


def _serve(bind: Optional[str], port: Optional[int], once: bool, time_limit: Optional[float], timeout: float,
           echo_port: Optional[int] = None) -> None:
    from guestcheck.selftest.iperf3 import find_iperf3
    from guestcheck.selftest.peer import DEFAULT_PORT, is_numeric
    from guestcheck.selftest.serve import DEFAULT_TIME_LIMIT, serve

    if bind is not None and not is_numeric(bind):
        raise SelftestError(errors.BAD_INPUT, f"--bind {bind!r}: give an IP address of this machine")
    limit = DEFAULT_TIME_LIMIT if time_limit is None else time_limit or None  # 0 turns it off
    port = port or DEFAULT_PORT
    if echo_port is None:
        echo_port = port + 1 if port < 65535 else port - 1
    if echo_port == port:
        raise SelftestError(errors.BAD_INPUT, f"--echo-port {echo_port} is the iperf3 port: `iperf3 -u` needs it")
    serve(find_iperf3(), bind=bind, port=port, once=once, time_limit=limit, timeout=timeout,
          say=lambda line: click.echo(f"guestcheck selftest --serve: {line}"), echo_port=echo_port)
