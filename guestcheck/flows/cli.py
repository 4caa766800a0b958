"""`guestcheck flows`: two readings of every TCP connection `--sample` seconds apart, each judged (judge/flows.py)
and shown busiest first. Exit 0 when no flow is held back (send buffer, receive window, congestion), 1 when one
is, 3 when the sockets could not be read."""

from __future__ import annotations

import sys
from typing import Any, Optional

import click

from guestcheck.exits import EXIT_UNKNOWN
from guestcheck.quantities import MAX_SAMPLE_SECONDS, parse_rate, sample_seconds_from_text

EXIT_NONE_HELD, EXIT_HELD = 0, 1
DEFAULT_FLOW_SAMPLE = 2.0
MAX_TOP = 100_000


def _sample(ctx: click.Context, param: click.Parameter, value: Any) -> float:
    try:
        return sample_seconds_from_text(str(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _rate(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        return parse_rate(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _peer(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    import socket

    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, value.strip("[]")))
        except (OSError, ValueError):
            continue
    raise click.BadParameter(f"{value!r} is not an IPv4 or IPv6 address")


def matches(flow: Any, port: Optional[int], peer: Optional[str]) -> bool:
    """--port: either end's port; --peer: the remote address (an IPv4 peer of an IPv6 socket matches its
    IPv4 form)."""
    if port is not None and port not in (flow.local_port, flow.remote_port):
        return False
    if peer is not None:
        remote = flow.remote[7:] if flow.remote.startswith("::ffff:") and "." in flow.remote else flow.remote
        return peer in (remote, flow.remote)
    return True


@click.command("flows")
@click.option("--sample", "sample_seconds", type=str, default=str(DEFAULT_FLOW_SAMPLE), show_default=True,
              metavar="SECONDS",
              callback=_sample, help=f"Seconds between the two readings, 0 to {MAX_SAMPLE_SECONDS:g} (0: counts "
                                     "since each connection began, no rates).")
@click.option("--top", type=click.IntRange(1, MAX_TOP), default=10, show_default=True, metavar="K",
              help="Show the K busiest flows.")
@click.option("--port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Only flows with this port at either end.")
@click.option("--peer", default=None, metavar="ADDRESS", callback=_peer, help="Only flows to or from this address.")
@click.option("--rate", default=None, metavar="RATE", callback=_rate,
              help="The path's rate (bits/s, e.g. 100M) when no shaper or physical NIC says it.")
@click.option("--json", "as_json", is_flag=True, help="Every flow that moved data, as guestcheck.flows/1 JSON.")
@click.pass_context
def flows_command(ctx: click.Context, sample_seconds: float, top: int, port: Optional[int], peer: Optional[str],
                  rate: Optional[float], as_json: bool) -> None:
    """What holds each live TCP connection back: send buffer, receive window, congestion or the application."""
    from guestcheck.collect.machine import collect_facts
    from guestcheck.judge import judge
    from guestcheck.judge.flows import judge_flows
    from guestcheck.render.flows import flows_human, flows_json
    from guestcheck.waiting import waiting_line

    with waiting_line(sample_seconds):
        facts = collect_facts(sample_seconds=sample_seconds, connections=True)
    flows = facts.flows
    if flows is None or not flows.available:
        why = flows.reason_unavailable if flows is not None else "sock_diag gave no answer"
        click.echo(f"guestcheck flows: {why}", err=True)
        ctx.exit(EXIT_UNKNOWN)
    verdict = judge_flows(facts, judge(facts), rate)
    chosen = [v for v in verdict.verdicts if matches(v.flow, port, peer)]
    held = any(v.held_back for v in chosen)
    from guestcheck.exits import exit_code_if_stdout_closes

    exit_code_if_stdout_closes(EXIT_HELD if held else EXIT_NONE_HELD)
    if as_json:
        sys.stdout.write(flows_json(flows, verdict, chosen))
    else:
        sys.stdout.write(flows_human(flows, verdict, chosen[:top], len(chosen)))
    ctx.exit(EXIT_HELD if held else EXIT_NONE_HELD)
