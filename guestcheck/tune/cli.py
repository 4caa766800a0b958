"""`guestcheck tune`: list, show, diff, apply, verify, rollback, recommend, offloads, queues.

Each command parses, makes one library call and prints; library errors (TuneError) become one line
and a non-zero exit here, at the edge.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional

import click

from guestcheck.roots import Roots
from guestcheck.text import escape_control
from guestcheck.tune import TuneError
from guestcheck.tune.plan import HOST, KEEP, RESTORE, SET, SKIP, Plan
from guestcheck.tune.profile import Loader, Profile, load, profile_dirs


@dataclass
class TuneContext:
    roots: Roots
    dirs: List[str]


def config_roots(base: str) -> Roots:
    """--root DIR: /etc, /run, /usr/lib, /lib and /var/lib under DIR; /proc and /sys stay the running kernel's."""
    return dataclasses.replace(Roots.under(base), sys="/sys", proc="/proc")


EXIT_FAILED = 3  # README "Exit codes": the tuner could not do it, and the system is as it was


class TuneFailed(click.ClickException):
    """A one-line error with tune's own exit code, apart from verify's 1 (something drifted)."""

    exit_code = EXIT_FAILED


@contextlib.contextmanager
def user_errors(as_root: str = "") -> Iterator[None]:
    """TuneError -> one line; `as_root` is the command to suggest with sudo when a non-root user failed."""
    try:
        yield
    except TuneError as e:
        hint = f" (you are not root: try `sudo {as_root}`)" if as_root and os.geteuid() != 0 else ""
        raise TuneFailed(escape_control(str(e)) + hint) from None


dry_run_option = click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")


@click.group()
@click.option("--root", "root", type=click.Path(file_okay=False), metavar="DIR",
              help="Read and write /etc, /run, /usr/lib, /lib and /var/lib under DIR (tests, image builds); "
                   "/proc/sys stays the running kernel's (of this network namespace).")
@click.option("--profiles", "profiles", metavar="DIR[:DIR]",
              help="Look for profiles here only (also $GUESTCHECK_PROFILES).")
@click.pass_context
def tune(ctx: click.Context, root: Optional[str], profiles: Optional[str]) -> None:
    """Apply, verify and roll back sysctl TCP profiles; turn offloads on; set queue counts."""
    roots = config_roots(os.path.abspath(root)) if root else Roots.from_env()
    ctx.obj = TuneContext(roots, profile_dirs(roots.etc, profiles))


def _load(tc: TuneContext, name: str) -> Profile:
    with user_errors():
        return load(name, tc.dirs)


def _guards_text(profile: Profile) -> str:
    parts = []
    if profile.guards.requires_guaranteed_memory:
        parts.append("needs guaranteed memory")
    if profile.guards.min_ram_mb:
        parts.append(f"needs >= {profile.guards.min_ram_mb} MiB RAM")
    return ", ".join(parts)


@tune.command("list")
@click.pass_obj
def list_(tc: TuneContext) -> None:
    """List the profiles and where they come from."""
    loader = Loader(tc.dirs)  # one loader: a file included by many profiles is read once
    found = loader.available()
    if not found:
        raise TuneFailed(escape_control(f"no profiles found in {', '.join(tc.dirs)}"))
    for name in sorted(found):
        try:
            p = loader.load(name)
            guards = _guards_text(p)
            click.echo(f"{name:<18} {p.summary}" + (f" [{guards}]" if guards else ""))
        except TuneError as e:  # reported on its line; the other profiles are still listed
            click.echo(f"{name:<18} (broken: {escape_control(str(e))})")


@tune.command()
@click.argument("profile")
@click.pass_obj
def show(tc: TuneContext, profile: str) -> None:
    """Print a profile with its includes resolved, and the reason for every key."""
    p = _load(tc, profile)
    click.echo(f"{p.name}: {p.summary}\nfile: {escape_control(p.path)}")
    if p.includes:
        click.echo(f"includes: {', '.join(p.includes)}")
    if _guards_text(p):
        click.echo(f"guard: {_guards_text(p)}")
    for s in p.settings.values():
        click.echo(f"  {s.key} = {'>' if s.raise_only else ''}{s.value}" + ("   (raise only)" if s.raise_only else ""))
        click.echo(f"      why: {s.reason or '(no reason given)'}")


def _plan_lines(plan: Plan, verbose: bool) -> List[str]:
    lines = []
    for c in plan.changes:
        if c.action in (SET, RESTORE):
            lines.append(f"  {c.action:<8} {c.key}: {c.live} -> {c.target}" + (f"  ({c.note})" if c.note else ""))
        elif c.action == KEEP:
            lines.append(f"  {c.action:<8} {c.key} = {c.live}  ({c.note})")
        else:
            lines.append(f"  {c.action:<8} {c.key}: {c.note}")
        if verbose and c.reason:
            lines.append(f"           why: {c.reason}")
    return [escape_control(line) for line in lines]  # live values come from the kernel


def _conflict_lines(tc: TuneContext, plan: Plan) -> List[str]:
    from guestcheck.tune.conflicts import describe, find_conflicts

    ours = {c.key: c.target for c in plan.changes if c.action in (SET, KEEP) and c.target and c.original != c.target}
    return [f"  {line}" for conflict in find_conflicts(ours, tc.roots) for line in describe(conflict)]


def _summary_line(plan: Plan) -> str:
    counts = {a: len(plan.of(a)) for a in (SET, RESTORE, KEEP, HOST, SKIP)}
    return ", ".join(f"{n} {a}" for a, n in counts.items() if n)


@tune.command()
@click.argument("profile")
@click.pass_obj
def diff(tc: TuneContext, profile: str) -> None:
    """Compare a profile with the live kernel: what apply would set, keep, skip or leave to the host."""
    from guestcheck.tune.live import ProcSys
    from guestcheck.tune.plan import plan_profile
    from guestcheck.tune.state import load_state

    p = _load(tc, profile)
    with user_errors():
        plan = plan_profile(p, tc.roots, load_state(tc.roots), ProcSys(tc.roots))
    click.echo(f"{p.name}: {p.summary}  [{_summary_line(plan)}]")
    for line in _plan_lines(plan, verbose=True):
        click.echo(line)
    conflicts = _conflict_lines(tc, plan)
    if conflicts:
        click.echo("other sysctl files setting these keys (boot order):")
        for line in conflicts:
            click.echo(line)


def _facts(tc: TuneContext, facts_file: Optional[str]) -> Any:
    if facts_file:
        from guestcheck.cli import load_facts_file

        return load_facts_file(facts_file)
    from guestcheck.collect.machine import collect_facts

    return collect_facts(tc.roots, sample_seconds=0)


@tune.command()
@click.argument("profile")
@dry_run_option
@click.option("--force", is_flag=True, help="Apply even when the profile's memory guard refuses.")
@click.option("--facts", "facts_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Judge the memory guard on a saved `guestcheck facts --json` instead of this machine.")
@click.pass_obj
def apply(tc: TuneContext, profile: str, dry_run: bool, force: bool, facts_file: Optional[str]) -> None:
    """Write a profile to /proc/sys, persist it in /etc/sysctl.d/90-guestcheck.conf, keep a backup."""
    from guestcheck.tune import guard
    from guestcheck.tune.apply import apply_profile

    p = _load(tc, profile)
    if p.guards.requires_guaranteed_memory or p.guards.min_ram_mb is not None:
        verdict = guard.check(p.guards, _facts(tc, facts_file))
        why = "; ".join(verdict.reasons)
        if not verdict.allowed and not (force or dry_run):
            raise TuneFailed(f"refusing {p.name}: {why} (--force applies it anyway)")
        if not verdict.allowed:
            click.echo(f"memory guard overridden by --force: {why}" if force else
                       f"note: apply would refuse {p.name} without --force: {why}")
    with user_errors(f"guestcheck tune apply {shlex.quote(p.name)}"):
        result = apply_profile(p, tc.roots, dry_run=dry_run)
    plan = result.plan
    if result.nothing_to_do:
        click.echo(f"{p.name}: nothing to change, the kernel already has it  [{_summary_line(plan)}]")
    else:
        verb = "would apply" if dry_run else "applied"
        click.echo(f"{verb} {p.name}: {len(result.written)} key(s) written  [{_summary_line(plan)}]")
        for line in _plan_lines(plan, verbose=False):
            click.echo(line)
        persisted = f"persisted in {result.persist_path}" if result.persist_text else "nothing to persist"
        click.echo(("would be " if dry_run else "") + persisted)
    host = [c.key for c in plan.of(HOST)]
    if host:
        click.echo(f"left to the host: {', '.join(host)} (set them in the host's own network namespace)")
    for note in result.notes:
        click.echo(f"note: {note}")
    for line in _conflict_lines(tc, plan):
        click.echo(f"boot order:{line}")
    if dry_run:
        click.echo("dry run: nothing was changed")


@tune.command()
@click.argument("profile", required=False)
@click.pass_context
def verify(ctx: click.Context, profile: Optional[str]) -> None:
    """Check the live values (and the persist file) against a profile, or against what was applied.
    Exit code 0 when everything holds, 1 when something drifted."""
    from guestcheck.tune.state import load_state
    from guestcheck.tune.verify import verify_applied, verify_profile

    tc: TuneContext = ctx.obj
    with user_errors():
        state = load_state(tc.roots)
        if state is None and not profile:
            click.echo("nothing to verify: guestcheck has applied nothing here (`guestcheck tune verify PROFILE` "
                       "checks a profile's values all the same)")
            ctx.exit(0)
        v = verify_profile(_load(tc, profile), tc.roots, state) if profile else verify_applied(tc.roots, state)
    for c in v.checks:
        mark = "ok  " if c.ok else "DIFF"
        click.echo(f"  {mark} {c.key}: live {c.live}, expected {c.expected}" + (f"  ({c.note})" if c.note else ""))
    for problem in v.problems:
        click.echo(f"  problem: {problem}")
    for note in v.notes:
        click.echo(f"  note: {note}")
    click.echo(f"{v.subject}: {'verified' if v.ok else 'NOT in force'}")
    ctx.exit(0 if v.ok else 1)


@tune.command()
@dry_run_option
@click.pass_obj
def rollback(tc: TuneContext, dry_run: bool) -> None:
    """Restore every value guestcheck changed to what it was before, and remove the persist file."""
    from guestcheck.tune.apply import rollback as do_rollback

    with user_errors("guestcheck tune rollback"):
        result = do_rollback(tc.roots, dry_run=dry_run)
    if result.nothing_to_do:
        click.echo("nothing to roll back: guestcheck has changed nothing here")
        return
    click.echo(("would roll back:" if dry_run else "rolled back:") + (" (values already original)"
                                                                      if not result.actions else ""))
    for action in result.actions:
        click.echo(f"  {action}")
    for note in result.notes:
        click.echo(f"note: {note}")
    if dry_run:
        click.echo("dry run: nothing was changed")


@tune.command()
@click.option("--facts", "facts_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Judge a saved `guestcheck facts --json` instead of this machine.")
@click.pass_obj
def recommend(tc: TuneContext, facts_file: Optional[str]) -> None:
    """Choose a profile for this machine and say why."""
    from guestcheck.tune.recommend import recommend as choose

    with user_errors():
        r = choose(_facts(tc, facts_file), tc.dirs)
    click.echo(f"recommended: {r.profile}")
    for reason in r.reasons:
        click.echo(f"  found: {escape_control(reason)}")
    click.echo(f"  so: {r.conclusion}")
    for alt in r.alternatives:
        click.echo(f"  or {alt}")
    click.echo(f"try: guestcheck tune diff {r.profile}")


def _nic_report(result: Any, dry_run: bool, what: str) -> None:
    if result.nothing_to_do:
        click.echo(f"{result.ifname}: nothing to change ({what})")
    elif dry_run:
        for k, v in result.planned.items():
            click.echo(f"  would set {k}: {v}")
        click.echo("dry run: nothing was changed")
    else:
        for line in result.done:
            click.echo(f"  {result.ifname}: {line}")
        click.echo("`guestcheck tune rollback` restores the previous settings (not persisted across reboots)")
    for note in result.notes:
        click.echo(f"note: {note}")


@tune.command()
@click.argument("iface")
@dry_run_option
@click.pass_obj
def offloads(tc: TuneContext, iface: str, dry_run: bool) -> None:
    """Turn on the offloads doctor flags as off but changeable on IFACE."""
    from guestcheck.tune.apply import apply_offloads

    with user_errors():
        result = apply_offloads(iface, tc.roots, dry_run=dry_run)
    _nic_report(result, dry_run, "no changeable offload is off")


@tune.command()
@click.argument("iface")
@dry_run_option
@click.pass_obj
def queues(tc: TuneContext, iface: str, dry_run: bool) -> None:
    """Set IFACE's channels to min(vCPUs, the device's maximum)."""
    from guestcheck.collect.machine import collect_host
    from guestcheck.tune.apply import apply_queues

    vcpus = collect_host(tc.roots).vcpus
    with user_errors():
        result = apply_queues(iface, tc.roots, vcpus, dry_run=dry_run)
    _nic_report(result, dry_run, f"already min({vcpus} vCPUs, max)")
