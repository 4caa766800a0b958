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
