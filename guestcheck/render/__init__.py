"""Renderers only format: human text, JSON, Prometheus textfile."""

from __future__ import annotations

import os
from typing import Any

REPORT_FORMATS = ("human", "json", "prometheus")


def render_report(
    report: Any, fmt: str, *, colour: bool = False, verbose: bool = False, pretty: bool = True
) -> str:
    if fmt == "json":
        from guestcheck.render.json import dumps

        return dumps(report.to_dict(), pretty=pretty)
    if fmt == "prometheus":
        from guestcheck.render.prometheus import render as render_prometheus

        return render_prometheus(report)
    from guestcheck.render.human import render

    return render(report, colour=colour, verbose=verbose)


def render_for(report: Any, fmt: str, *, to_terminal: bool, to_file: bool = False, verbose: bool = False) -> str:
    """Colour only on a terminal (and never with NO_COLOR); indented JSON for people, compact for pipes."""
    colour = fmt == "human" and to_terminal and "NO_COLOR" not in os.environ
    return render_report(report, fmt, colour=colour, verbose=verbose, pretty=to_terminal or to_file)


def write_report(path: str, text: str, *, named_by_user: bool) -> None:
    """Through atomicfile.write_output: a file is replaced atomically, so a reader (node_exporter, a monitoring
    agent) never sees half a report; `/dev/null`, a terminal or a FIFO is written as `>` would, never renamed over.
    Raises OSError.

    `-o FILE` (named_by_user) keeps an existing FILE's mode (less setuid, setgid, sticky and world-write) and
    makes no directories: a typo gets an error. The textfile directory must exist (a typo there would be a
    directory node_exporter never reads) and guestcheck.prom is always 0644, so node_exporter can read it.
    """
    from guestcheck.atomicfile import write_output

    write_output(path, text, keep_mode=named_by_user)
