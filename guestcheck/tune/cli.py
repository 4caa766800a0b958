"""`guestcheck tune`: list, show, diff, apply, verify, rollback, recommend, offloads, queues, rings, rps.

Each command parses, makes one library call and prints; library errors (TuneError) become one line
and a non-zero exit here, at the edge.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Tuple

import click

from guestcheck.roots import Roots
from guestcheck.text import escape_control, shell_word
from guestcheck.tune import TuneError
from guestcheck.tune.plan import HOST, KEEP, RESTORE, SET, SKIP, Plan
from guestcheck.tune.profile import Loader, Profile, load, profile_dirs


def say(line: str) -> None:
    """One line of tune's output: file paths, kernel values and names in it come from outside, so control
    characters are shown escaped, never obeyed (every line, not only the ones known to carry such text)."""
    click.echo(escape_control(line))

@dataclass
class TuneContext:
    roots: Roots
    dirs: List[str]


def config_roots(base: str) -> Roots:
    """--root DIR: /etc, /run, /usr/lib, /lib and /var/lib under DIR; /proc and /sys stay the running kernel's."""
    return dataclasses.replace(Roots.under(base), sys="/sys", proc="/proc")


EXIT_FAILED = 3  # README "Exit codes": the tuner could not do it, and the system is as it was


class TuneFailed(click.ClickException):
    """A one-line error with tune's own exit code, apart from verify's 1 (something drifted).

    Its message is escaped here, once for every refusal: a memory guard's reasons carry a container name
    from a marker file, errors carry paths and interface names (escaping escaped text changes nothing)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(escape_control(message))
        self.exit_code = exit_code


@contextlib.contextmanager
def user_errors(as_root: str = "") -> Iterator[None]:
    """TuneError -> one line, with its exit code; what a refusal said before it is said first. `as_root` is the
    command to suggest with sudo when a non-root user failed (not when being root would not help)."""
    try:
        yield
    except TuneError as e:
        for line in getattr(e, "said", ()):
            say(line)
        root = as_root and e.root_may_help and os.geteuid() != 0
        hint = f" (you are not root: try `sudo {as_root}`)" if root else ""
        raise TuneFailed(escape_control(str(e)) + hint, e.exit_code) from None


dry_run_option = click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
facts_option = click.option("--facts", "facts_file", type=click.Path(dir_okay=False), metavar="FILE",
                            help="Judge memory (the guard, the buffer cap) on a saved `guestcheck facts --json` "
                                 "instead of this machine.")


def path_options(f: Any) -> Any:
    """--rate with --rtt or --peer: size the TCP buffer ceilings to the path's bandwidth-delay product."""
    f = click.option("--peer", metavar="HOST[:PORT]",
                     help="Measure the round trip with TCP connects to HOST (port 5201 unless given) instead "
                          "of --rtt.")(f)
    f = click.option("--rtt", metavar="TIME", help="The path's round-trip time, e.g. 300ms.")(f)
    return click.option("--rate", metavar="RATE",
                        help="Size the buffers to a path of this bandwidth (bits/s, e.g. 400M); needs --rtt or "
                             "--peer.")(f)


@click.group()
@click.option("--root", "root", type=click.Path(file_okay=False), metavar="DIR",
              help="Read and write /etc, /run, /usr/lib, /lib and /var/lib under DIR (tests, image builds); "
                   "/proc/sys stays the running kernel's (of this network namespace).")
@click.option("--profiles", "profiles", metavar="DIR[:DIR]",
              help="Look for profiles here first (also $GUESTCHECK_PROFILES), instead of /etc/guestcheck/profiles; "
                   "the shipped profiles stay last in the search path, so a profile here may include one of them.")
@click.pass_context
def tune(ctx: click.Context, root: Optional[str], profiles: Optional[str]) -> None:
    """Apply, verify and roll back sysctl TCP profiles; turn offloads on; set queue counts, ring sizes and RPS."""
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
            say(f"{name:<18} {p.summary}" + (f" [{guards}]" if guards else ""))
        except TuneError as e:  # reported on its line; the other profiles are still listed
            say(f"{name:<18} (broken: {e})")


@tune.command()
@click.argument("profile")
@click.pass_obj
def show(tc: TuneContext, profile: str) -> None:
    """Print a profile with its includes resolved, and the reason for every key."""
    p = _load(tc, profile)
    say(f"{p.name}: {p.summary}")
    say(f"file: {p.path}")
    if p.includes:
        say(f"includes: {', '.join(p.includes)}")
    if _guards_text(p):
        say(f"guard: {_guards_text(p)}")
    for s in p.settings.values():
        say(f"  {s.key} = {'>' if s.raise_only else ''}{s.value}" + ("   (raise only)" if s.raise_only else ""))
        say(f"      why: {s.reason or '(no reason given)'}")
        if s.source:
            say(f"      source: {s.source}")


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
        if verbose and c.source:
            lines.append(f"           source: {c.source}")
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
@path_options
@facts_option
@click.pass_obj
def diff(tc: TuneContext, profile: str, rate: Optional[str], rtt: Optional[str], peer: Optional[str],
         facts_file: Optional[str]) -> None:
    """Compare a profile with the live kernel: what apply would set, keep, skip or leave to the host.
    With --rate and --rtt (or --peer), the buffer ceilings are sized to that path and the arithmetic shown."""
    from guestcheck.tune.service import diff_profile
    from guestcheck.tune.verify import interrupted_run

    p = _load(tc, profile)
    with user_errors():
        d = diff_profile(tc.roots, p, rate=rate, rtt=rtt, peer=peer, facts_file=facts_file)
    plan = d.plan
    say(f"{d.profile.name}: {d.profile.summary}  [{_summary_line(plan)}]")
    if d.sizing is not None:
        for line in d.sizing.lines():
            say(f"  {line}")
    if d.guarded is not None:
        result, what = d.guarded.result, d.guarded.what
        why = "; ".join(result.reasons)
        say(f"memory guard: apply allows {what}: {why}" if result.allowed else
            f"memory guard: apply would refuse {what} without --force: {why}")
    if d.state is not None and d.procsys is not None:
        for line in interrupted_run(d.state, d.procsys):
            say(f"note: {line}")
    for line in _plan_lines(plan, verbose=True):
        say(line)
    conflicts = _conflict_lines(tc, plan)
    if conflicts:
        say("other sysctl files setting these keys (boot order):")
        for line in conflicts:
            say(line)


@tune.command()
@click.argument("profile")
@dry_run_option
@click.option("--force", is_flag=True, help="Apply even when the profile's memory guard refuses, or when another "
              "agent (an active TuneD profile) sets the same keys and would put its values back.")
@path_options
@facts_option
@click.pass_context
def apply(ctx: click.Context, profile: str, dry_run: bool, force: bool, rate: Optional[str], rtt: Optional[str],
          peer: Optional[str], facts_file: Optional[str]) -> None:
    """Write a profile to /proc/sys, persist it in /etc/sysctl.d/90-guestcheck.conf, keep a backup.
    With --rate and --rtt (or --peer), the TCP buffer ceilings are sized to that path instead.
    Exit code 1 when the change is made but a later sysctl.d file puts another value back at boot."""
    from guestcheck.tune.service import apply_profile

    tc: TuneContext = ctx.obj
    p = _load(tc, profile)
    with user_errors(f"guestcheck tune apply {shell_word(p.name)}"):
        result = apply_profile(tc.roots, p, dry_run=dry_run, force=force, rate=rate, rtt=rtt, peer=peer,
                               facts_file=facts_file)
    for line in result.said:
        say(line)
    plan = result.plan
    p = plan.profile
    if result.nothing_to_do:
        say(f"{p.name}: nothing to change, the kernel already has it  [{_summary_line(plan)}]")
    else:
        verb = "would apply" if dry_run else "applied"
        say(f"{verb} {p.name}: {len(result.written)} key(s) written  [{_summary_line(plan)}]")
        for line in _plan_lines(plan, verbose=False):
            say(line)
        persisted = f"persisted in {result.persist_path}" if result.persist_text else "nothing to persist"
        say(("would be " if dry_run else "") + persisted)
    host = [c.key for c in plan.of(HOST)]
    if host:
        say(f"left to the host: {', '.join(host)} (set them in the host's own network namespace)")
    for note in result.notes:
        say(f"note: {note}")
    for line in _conflict_lines(tc, plan):
        say(f"boot order:{line}")
    if dry_run:
        say("dry run: nothing was changed")
        return
    lost = _lost_at_boot(tc, plan)
    if lost:
        say(f"in force now, but at the next boot {lost}")
        ctx.exit(1)


def _lost_at_boot(tc: TuneContext, plan: Plan) -> str:
    """Which later sysctl.d file puts another value back at boot, said in one line ("" when none does)."""
    from guestcheck.tune.conflicts import find_conflicts

    ours = {c.key: c.target for c in plan.changes if c.action in (SET, KEEP) and c.target and c.original != c.target}
    lost = [c for c in find_conflicts(ours, tc.roots) if c.winner is not None and c.winner.value != c.ours]
    if not lost:
        return ""
    files = sorted({c.winner.where.rsplit(":", 1)[0] for c in lost if c.winner})
    keys = ", ".join(f"{c.key} = {c.winner.value}" for c in lost if c.winner)
    return escape_control(f"{', '.join(files)} wins: it sets {keys}")


@tune.command()
@click.argument("profile", required=False)
@click.pass_context
def verify(ctx: click.Context, profile: Optional[str]) -> None:
    """Check the live values (and the persist file) against a profile, or against what was applied.
    Exit code 0 when everything holds, 1 when something drifted."""
    from guestcheck.tune.service import verify as verify_tuning

    tc: TuneContext = ctx.obj
    p = _load(tc, profile) if profile else None
    with user_errors():
        v = verify_tuning(tc.roots, p)
    if v is None:
        say("nothing to verify: guestcheck has applied nothing here (`guestcheck tune verify PROFILE` "
            "checks a profile's values all the same)")
        ctx.exit(0)
    for c in v.checks:
        mark = "ok  " if c.ok else "DIFF"
        live = "absent" if c.live is None else c.live
        say(f"  {mark} {c.key}: live {live}, expected {c.expected}" + (f"  ({c.note})" if c.note else ""))
    for problem in v.problems:
        say(f"  problem: {problem}")
    for note in v.notes:
        say(f"  note: {note}")
    say(f"{v.subject}: {'verified' if v.ok else 'NOT in force'}")
    ctx.exit(0 if v.ok else 1)


@tune.command()
@dry_run_option
@click.option("--leave", multiple=True, metavar="IFACE",
              help="Leave the live settings of IFACE (as the journal names it) as they are: for a tuned device "
                   "that is gone for good and whose name another device has taken. Its files are restored.")
@click.pass_obj
def rollback(tc: TuneContext, dry_run: bool, leave: Tuple[str, ...]) -> None:
    """Restore every value guestcheck changed to what it was before, and remove the persist file."""
    from guestcheck.tune.service import rollback as do_rollback

    with user_errors("guestcheck tune rollback"):
        result = do_rollback(tc.roots, dry_run=dry_run, leave=leave)
    if result.nothing_to_do:
        say("nothing to roll back: guestcheck has changed nothing here")
        return
    say(("would roll back:" if dry_run else "rolled back:") + (" (values already original)"
                                                                      if not result.actions else ""))
    for action in result.actions:
        say(f"  {action}")
    for note in result.notes:
        say(f"note: {note}")
    if dry_run:
        say("dry run: nothing was changed")


@tune.command()
@facts_option
@path_options
@click.pass_obj
def recommend(tc: TuneContext, facts_file: Optional[str], rate: Optional[str], rtt: Optional[str],
              peer: Optional[str]) -> None:
    """Choose a profile for this machine and say why; with --rate and --peer (or --rtt), also the buffer
    sizes for that path."""
    from guestcheck.tune.service import recommend as choose

    with user_errors():
        r = choose(tc.roots, tc.dirs, facts_file=facts_file, rate=rate, rtt=rtt, peer=peer)
    say(f"recommended: {r.profile}")
    for reason in r.reasons:
        say(f"  found: {reason}")
    for line in r.sizes:
        say(f"  size: {line}")
    say(f"  so: {r.conclusion}")
    for alt in r.alternatives:
        say(f"  or {alt}")
    for refusal in r.refusals:
        say(f"  note: {refusal}")
    say(f"try: {r.command}")


def _nic_report(result: Any, dry_run: bool, what: str, persist: bool) -> None:
    for line in result.said:  # the owners guard's
        say(line)
    if result.nothing_to_do:
        say(f"{result.ifname}: nothing to change ({what})")
    elif dry_run:
        for k, v in result.planned.items():
            say(f"  would set {k}: {v}")
        say("dry run: nothing was changed")
    else:
        for line in result.done:
            say(f"  {result.ifname}: {line}")
        for path in result.persisted:
            say(f"persisted for the next boot in {path}")
        if not persist:
            say("live only (--no-persist): the next boot puts the previous settings back")
        say("`guestcheck tune rollback` restores the previous settings" +
                   (" and removes what was persisted" if persist else ""))
    for note in result.notes:
        say(f"note: {note}")


def _nic_command(command: str, iface: str, *options: str, dry_run: bool, no_persist: bool) -> str:
    """The command to suggest with sudo, as `tune apply` does: the interface name is quoted for the shell, and
    a control character in it shown escaped."""
    flags = [*options, *(["--dry-run"] if dry_run else []), *(["--no-persist"] if no_persist else [])]
    return escape_control(" ".join(["guestcheck", "tune", command, shell_word(iface), *flags]))


no_persist_option = click.option("--no-persist", is_flag=True,
                                 help="Change the live settings only; write no .link file or udev rule.")
owners_force_option = click.option("--force", is_flag=True,
                                   help="Apply even when another agent (TuneD, NetworkManager...) would put its own "
                                        "value back.")


@tune.command()
@click.argument("iface")
@dry_run_option
@no_persist_option
@owners_force_option
@click.pass_obj
def offloads(tc: TuneContext, iface: str, dry_run: bool, no_persist: bool, force: bool) -> None:
    """Turn on the offloads doctor flags as off but changeable on IFACE (what they depend on first), and
    persist them in /etc/systemd/network/50-guestcheck-IFACE.link."""
    from guestcheck.tune.service import apply_offloads

    with user_errors(_nic_command("offloads", iface, dry_run=dry_run, no_persist=no_persist)):
        result = apply_offloads(iface, tc.roots, dry_run=dry_run, persist=not no_persist, force=force)
    _nic_report(result, dry_run, "no changeable offload is off", not no_persist)


@tune.command()
@click.argument("iface")
@dry_run_option
@no_persist_option
@owners_force_option
@click.pass_obj
def queues(tc: TuneContext, iface: str, dry_run: bool, no_persist: bool, force: bool) -> None:
    """Set IFACE's channels to min(vCPUs, the device's maximum), and persist them."""
    from guestcheck.tune.service import apply_queues

    with user_errors(_nic_command("queues", iface, dry_run=dry_run, no_persist=no_persist)):
        result, vcpus = apply_queues(iface, tc.roots, dry_run=dry_run, persist=not no_persist, force=force)
    _nic_report(result, dry_run, f"already min({vcpus} vCPUs, the device maximum)", not no_persist)


@tune.command()
@click.argument("iface")
@click.option("--rx", type=click.IntRange(1, 1 << 20), metavar="N", help="RX ring size (default: the maximum).")
@click.option("--tx", type=click.IntRange(1, 1 << 20), metavar="N", help="TX ring size (default: the maximum).")
@dry_run_option
@no_persist_option
@owners_force_option
@click.pass_obj
def rings(tc: TuneContext, iface: str, rx: Optional[int], tx: Optional[int], dry_run: bool,
          no_persist: bool, force: bool) -> None:
    """Raise IFACE's RX and TX rings to the device's maximum (or --rx/--tx), and persist them."""
    from guestcheck.tune.service import apply_rings

    sizes = [*(["--rx", str(rx)] if rx is not None else []), *(["--tx", str(tx)] if tx is not None else [])]
    with user_errors(_nic_command("rings", iface, *sizes, dry_run=dry_run, no_persist=no_persist)):
        result = apply_rings(iface, tc.roots, rx=rx, tx=tx, dry_run=dry_run, persist=not no_persist, force=force)
    _nic_report(result, dry_run, "rings already at the size asked for", not no_persist)


@tune.command()
@click.argument("iface")
@click.option("--cpus", metavar="LIST", help="The CPUs to steer to, e.g. 0-3,5 (default: every online CPU).")
@click.option("--force", is_flag=True, help="Apply even when irqbalance runs and the mask leaves out CPUs it may "
              "move the queue's interrupt to.")
@dry_run_option
@no_persist_option
@click.pass_obj
def rps(tc: TuneContext, iface: str, cpus: Optional[str], force: bool, dry_run: bool, no_persist: bool) -> None:
    """Spread IFACE's receive work over CPUs (Receive Packet Steering on every receive queue), and persist it
    in a udev rule (/etc/udev/rules.d/90-guestcheck-IFACE.rules): .link files have no RPS setting."""
    from guestcheck.tune.service import apply_rps
    from guestcheck.tune.units.rps import cpu_ranges

    command = f"guestcheck tune rps {shell_word(iface)}" + (f" --cpus {shell_word(cpus)}" if cpus else "")
    with user_errors(command):
        result, chosen = apply_rps(iface, tc.roots, asked=cpus, force=force, dry_run=dry_run,
                                   persist=not no_persist)
    _nic_report(result, dry_run, f"RPS already steers every receive queue to CPUs {cpu_ranges(chosen)}",
                not no_persist)
