"""`guestcheck refresh`: judge the machine again and rewrite what fleet tools read, the node_exporter textfile
and the Ansible local fact. guestcheck-metrics.timer runs it every 15 minutes; first boot writes the same files.
"""

from __future__ import annotations

from typing import Callable

import click

from guestcheck.config import load_fleet_settings, load_settings, textfile_dir
from guestcheck.fleet import applied_profile, write_ansible_fact
from guestcheck.roots import Roots
from guestcheck.text import escape_control

PREFIX = "guestcheck refresh:"


def refresh(roots: Roots, say: Callable[[str], None]) -> int:
    """Judge the machine again and rewrite the textfile and the fact; 0, or 1 when a file could not be written."""
    from guestcheck.collect.machine import collect_facts
    from guestcheck.doctor import build_report
    from guestcheck.render.prometheus import render, write_textfile

    settings, fleet = load_settings(roots), load_fleet_settings(roots)
    for problem in settings.problems + fleet.problems:
        say(f"{PREFIX} problem: {problem}")
    report = build_report(collect_facts(roots, sample_seconds=settings.sample_seconds))
    report.profile = applied_profile(roots)
    failed = 0
    directory = textfile_dir(settings, roots)
    written = []
    if directory is not None:
        try:
            written.append(write_textfile(render(report), directory))
        except OSError as e:
            say(f"{PREFIX} cannot write metrics into {directory}: {e.strerror or e}")
            failed = 1
    try:
        fact = write_ansible_fact(roots, report, fleet, report.profile)
        if fact:
            written.append(fact)
    except OSError as e:
        say(f"{PREFIX} cannot write the Ansible fact: {e.strerror or e}")
        failed = 1
    what = ", ".join(written) if written else "nothing (see above)" if failed else "nothing (none asked)"
    say(f"{PREFIX} status {report.status.label}; wrote {what}")
    return failed


@click.command("refresh")
def refresh_command() -> None:
    """Judge this machine again and rewrite what fleet tools read: node_exporter's guestcheck.prom and
    Ansible's /etc/ansible/facts.d/guestcheck.fact (guestcheck-metrics.timer runs it every 15 minutes).

    Exit 0 when everything asked for was written, 1 when a file could not be.
    """
    code = refresh(Roots.from_env(), lambda line: click.echo(escape_control(line)))
    click.get_current_context().exit(code)
