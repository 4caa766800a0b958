"""First boot of a cloud instance: judge the machine once and leave the verdict where people look.

guestcheck-firstboot.service runs `guestcheck firstboot` after cloud-init on every boot; this module
decides whether this boot is the instance's first (keyed on cloud-init's instance-id, else
/etc/machine-id), optionally applies the profile /etc/guestcheck/guestcheck.conf names, runs the
doctor, and writes /var/lib/guestcheck/report.json, the node_exporter textfile and a short summary
for the serial console and the journal. One time limit covers all of it, the profile apply included:
an apply it cuts off is rolled back from the tuner's journal. It never fails the boot: every problem
is written down and the command exits 0.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional

import click

from guestcheck.atomicfile import write_atomic, write_output
from guestcheck.collect.fs import read
from guestcheck.config import Settings, config_path, load_settings, textfile_dir
from guestcheck.roots import Roots
from guestcheck.strictjson import loads as strict_json
from guestcheck.text import escape_control

PREFIX = "guestcheck firstboot:"
STAMP_SCHEMA = "guestcheck.firstboot/1"
MAX_FINDING_LINES = 10
MAX_INSTANCE_ID = 1024  # cloud-init ids are short; a longer "id" is damage
# what is read, each through the one bounded reader (a FIFO or /dev/zero there is "not a regular file")
MAX_INSTANCE_DATA = 16 << 20  # cloud-init's instance-data.json: datasource metadata, a few hundred KiB at most
MAX_STAMP = 1 << 16  # our own firstboot.json: a few lines


# --- where things are ----------------------------------------------------------------------------------

def state_dir(roots: Roots) -> str:
    return os.path.join(roots.var_lib, "guestcheck")


def report_path(roots: Roots) -> str:
    return os.path.join(state_dir(roots), "report.json")


def stamp_path(roots: Roots) -> str:
    return os.path.join(state_dir(roots), "firstboot.json")


# --- which instance is this ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Instance:
    id: str
    source: str  # cloud-init | machine-id | none


def current_instance(roots: Roots) -> Instance:
    """cloud-init's instance-id changes with every instance made from an image; machine-id is the fallback."""
    got = read(os.path.join(roots.run, "cloud-init", "instance-data.json"), MAX_INSTANCE_DATA)
    if got.value is not None:
        try:  # damaged, hostile or of another shape: machine-id decides instead
            data = strict_json(got.value)
        except ValueError:
            data = None
        v1 = data.get("v1") if isinstance(data, dict) else None
        iid = (v1.get("instance_id") or v1.get("instance-id")) if isinstance(v1, dict) else None
        if isinstance(iid, str) and iid.strip() and len(iid.strip()) <= MAX_INSTANCE_ID:
            return Instance(iid.strip(), "cloud-init")
    machine_id = (read(os.path.join(roots.etc, "machine-id")).value or "").strip()
    if machine_id and machine_id != "uninitialized" and len(machine_id) <= MAX_INSTANCE_ID:
        return Instance(machine_id, "machine-id")
    return Instance("", "none")


def checked_instance(roots: Roots) -> Optional[dict[str, Any]]:
    """The stamp of the last first boot, or None (never ran, forgotten, or unreadable)."""
    got = read(stamp_path(roots), MAX_STAMP)
    if got.value is None:
        return None
    try:
        stamp = strict_json(got.value)
    except ValueError:
        return None
    return stamp if isinstance(stamp, dict) and stamp.get("schema") == STAMP_SCHEMA else None


def forget_instance(roots: Roots) -> List[str]:
    """Remove the stamp and the old report, so the next boot is a first boot (`cloud-init clean` runs this)."""
    removed = []
    for path in (stamp_path(roots), report_path(roots)):
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


# --- a time limit that also interrupts blocking reads ----------------------------------------------------

class TimeLimitExceeded(BaseException):
    """BaseException, so the `except Exception` that isolates each check cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM in the main thread; elsewhere (no signals there) the unit's TimeoutStartSec is the backstop."""
    if seconds <= 0:
        raise TimeLimitExceeded()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- the run -------------------------------------------------------------------------------------------

Collector = Callable[[Roots, float], Any]  # (roots, sample seconds) -> Facts


def collect_live(roots: Roots, sample_seconds: float) -> Any:
    from guestcheck.collect.machine import collect_facts

    return collect_facts(roots, sample_seconds=sample_seconds)


ProfileApplier = Callable[[str, Roots], str]  # (profile, roots) -> one-line result; raises on failure


def apply_with_tuner(name: str, roots: Roots) -> str:
    """What `guestcheck tune apply NAME` does, memory and owners guards included (first boot has no --force).

    The tuner plans, journals and writes on its own, and undoes a half-done apply itself.
    """
    from guestcheck.tune.service import MemoryRefused, apply_at_boot

    try:
        result = apply_at_boot(roots, name)
    except MemoryRefused as e:
        raise RuntimeError(f"refused by its memory guard: {e.why}") from None
    if result.nothing_to_do:
        return "nothing to change, the kernel already has it"
    persisted = f", persisted in {result.persist_path}" if result.persist_text else ""
    return f"applied, {len(result.written)} key(s) written{persisted}"


@dataclass
class Outcome:
    ran: bool
    instance: Instance
    status: Optional[str] = None
    profile: Optional[str] = None
    profile_result: Optional[str] = None
    profile_rolled_back: bool = False  # the time limit cut the apply off and the journal undid it
    report: Optional[str] = None  # report.json when written
    textfile: Optional[str] = None
    ansible_fact: Optional[str] = None  # /etc/ansible/facts.d/guestcheck.fact when written (guestcheck/fleet.py)
    problems: List[str] = field(default_factory=list)
    seconds: float = 0.0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _empty_report(problem: str) -> Any:
    from guestcheck.facts import Facts, Problem
    from guestcheck.findings import Status
    from guestcheck.report import Report

    return Report(Facts(collected_at=_now(), complete=False, problems=[Problem.note(problem)]), [], Status.UNKNOWN)


def undo_cut_apply(roots: Roots, journal_before: Optional[str], limit: float) -> tuple[str, bool]:
    """After the time limit cut an apply off: roll it back with the tuner's own rollback, from its journal.

    Returns the line for the report and whether a rollback ran (the tuner's service tells, from its journal,
    whether the apply had begun, and had finished).
    """
    from guestcheck.tune import TuneError
    from guestcheck.tune.service import undo_cut_apply as undo

    cut = f"cut off by the {limit:g} s time limit"
    try:
        undone = undo(roots, journal_before)
    except TuneError as e:
        return f"not applied: {cut}, and rolling back failed: {e}; run `guestcheck tune rollback`", False
    if undone.outcome == "untouched":
        return f"not applied: {cut} before it changed anything", False
    if undone.outcome == "finished":
        return f"applied, but {cut} as it finished (`guestcheck tune rollback` undoes it)", False
    changes = f"{len(undone.actions)} change(s) undone" if undone.actions else "nothing had changed yet"
    return f"not applied: {cut}; rolled back from its journal ({changes})", True


def run(
    roots: Roots,
    *,
    force: bool = False,
    collect: Collector = collect_live,
    apply_profile: ProfileApplier = apply_with_tuner,
    emit: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Check the machine if this is the instance's first boot. Never raises an Exception.

    One time limit, from the start, covers reading the settings and the instance, the profile apply and the
    check; only writing the results comes after it, so a boot that hit the limit still leaves its stamp.
    """
    started = clock()
    outcome = Outcome(ran=False, instance=Instance("", "none"))

    def say(line: str) -> None:  # the serial console is a terminal: no control character from a file reaches it
        emit(escape_control(line))

    def note(problem: str) -> None:
        outcome.problems.append(problem)
        say(f"{PREFIX} problem: {problem}")

    settings = Settings()
    stamp = None
    try:
        with time_limit(settings.timeout_seconds):  # the default, until the settings say otherwise
            settings = load_settings(roots)
            outcome.instance = current_instance(roots)
            stamp = checked_instance(roots)
    except TimeLimitExceeded:
        note(f"reading the settings and the instance id took more than {settings.timeout_seconds:g} s; "
             "using defaults")
    deadline = started + settings.timeout_seconds

    def remaining() -> float:
        return deadline - clock()

    instance = outcome.instance
    label = f"instance {instance.id or '?'} ({instance.source})"
    for problem in settings.problems:
        note(problem)
    if not settings.enabled and not force:
        say(f"{PREFIX} disabled in {config_path(roots)}; nothing to do")
        return outcome
    if not force and stamp is not None and stamp.get("instance_id") == instance.id:
        say(f"{PREFIX} {label} was already checked at {stamp.get('checked_at', '?')}; skipping "
            f"(`cloud-init clean` or `guestcheck firstboot --force` checks again)")
        return outcome

    outcome.ran = True
    say(f"{PREFIX} {label}: first boot, checking the network")
    report = None
    if settings.refused_profile is not None:
        outcome.profile = settings.refused_profile
        outcome.profile_result = "not applied: not a profile name (see the problems)"
    if settings.profile:
        outcome.profile = settings.profile
        report = _apply(settings, roots, outcome, apply_profile, remaining, say, note)
    if report is None:
        report = _check(settings, roots, collect, remaining, note)
    outcome.status = report.status.label
    outcome.seconds = round(clock() - started, 3)
    _write_results(roots, settings, outcome.instance, report, outcome, note)
    _summarise(report, outcome, roots, say)
    return outcome


def _apply(settings: Settings, roots: Roots, outcome: Outcome, apply_profile: ProfileApplier,
           remaining: Callable[[], float], say: Callable[[str], None], note: Callable[[str], None]) -> Any:
    """Apply the profile within the time limit; None, or the report to write when the limit cut it off."""
    name = settings.profile or ""
    from guestcheck.tune.service import journal_mark

    journal_before = journal_mark(roots)
    try:
        with time_limit(remaining()):
            try:
                outcome.profile_result = apply_profile(name, roots)
            except Exception as e:  # the tuner restores what it touched; the boot goes on
                outcome.profile_result = f"not applied: {e}"
                note(f"profile {name} not applied: {e}")
                return None
    except TimeLimitExceeded:
        outcome.profile_result, outcome.profile_rolled_back = undo_cut_apply(
            roots, journal_before, settings.timeout_seconds)
        note(f"profile {name} {outcome.profile_result}")
        return _empty_report(f"the {settings.timeout_seconds:g} s time limit ran out while the profile "
                             f"{name} was applied; the check did not run")
    say(f"{PREFIX} profile {name}: {outcome.profile_result}")
    return None


def _check(settings: Settings, roots: Roots, collect: Collector, remaining: Callable[[], float],
           note: Callable[[str], None]) -> Any:
    """Collect and judge within what is left of the time limit; an empty unknown report when it cannot."""
    from guestcheck.doctor import build_report

    try:
        with time_limit(remaining()):
            return build_report(collect(roots, settings.sample_seconds))
    except TimeLimitExceeded:
        problem = f"the check did not finish within {settings.timeout_seconds:g} s; gave up"
    except Exception as e:
        problem = f"the check failed: {type(e).__name__}: {e}"
    note(problem)
    return _empty_report(problem)


def _write_results(roots: Roots, settings: Settings, instance: Instance, report: Any, outcome: Outcome,
                   note: Callable[[str], None]) -> None:
    from guestcheck.render.json import dumps
    from guestcheck.render.prometheus import render, write_textfile

    document = report.to_dict()
    document["firstboot"] = {
        "instance_id": instance.id,
        "instance_source": instance.source,
        "checked_at": _now(),
        "seconds": outcome.seconds,
        "profile": outcome.profile,
        "profile_result": outcome.profile_result,
        "profile_rolled_back": outcome.profile_rolled_back,
        "problems": outcome.problems,
    }
    try:  # an output others read: a device or FIFO put there is written as one, never renamed over
        write_output(report_path(roots), dumps(document), keep_mode=False, make_parents=True)
        outcome.report = report_path(roots)
    except OSError as e:
        note(f"cannot write {report_path(roots)}: {e.strerror or e}")
    from guestcheck.config import load_fleet_settings
    from guestcheck.fleet import applied_profile, write_ansible_fact

    report.profile = applied_profile(roots)
    directory = textfile_dir(settings, roots)
    if directory is not None:
        try:
            outcome.textfile = write_textfile(render(report), directory)
        except OSError as e:
            note(f"cannot write metrics into {directory}: {e.strerror or e}")
    fleet = load_fleet_settings(roots)
    for problem in fleet.problems:
        note(problem)
    try:
        outcome.ansible_fact = write_ansible_fact(roots, report, fleet, report.profile)
    except OSError as e:
        note(f"cannot write the Ansible fact: {e.strerror or e}")
    stamp = {"schema": STAMP_SCHEMA, "instance_id": instance.id, "instance_source": instance.source,
             "checked_at": document["firstboot"]["checked_at"], "status": outcome.status}
    try:  # written last, and even after problems: a boot that cannot finish must not retry forever
        write_atomic(stamp_path(roots), json.dumps(stamp, indent=2) + "\n")
    except OSError as e:
        note(f"cannot write {stamp_path(roots)}: {e.strerror or e}")


def _summarise(report: Any, outcome: Outcome, roots: Roots, emit: Callable[[str], None]) -> None:
    from guestcheck.findings import Severity

    counts = {s: sum(1 for f in report.findings if f.severity is s) for s in (Severity.CRITICAL, Severity.WARNING)}
    emit(f"{PREFIX} status {report.status.label.upper()} ({counts[Severity.CRITICAL]} critical, "
         f"{counts[Severity.WARNING]} warning) in {outcome.seconds:.1f} s")
    serious = [f for f in report.findings if f.severity >= Severity.WARNING]
    for f in serious[:MAX_FINDING_LINES]:
        emit(f"{PREFIX} {f.severity.label.upper()} {f.id} [{f.subject}] {f.summary}")
    if len(serious) > MAX_FINDING_LINES:
        emit(f"{PREFIX} ... and {len(serious) - MAX_FINDING_LINES} more in the report")
    where = f"report {outcome.report}" if outcome.report else "no report written (see the problems)"
    if outcome.textfile:
        where += f", metrics {outcome.textfile}"
    if outcome.ansible_fact:
        where += f", Ansible fact {outcome.ansible_fact}"
    emit(f"{PREFIX} {where}; `guestcheck explain ID` tells more")


# --- the command ---------------------------------------------------------------------------------------

def _emit(line: str) -> None:
    click.echo(escape_control(line))
    sys.stdout.flush()


@click.command("firstboot")
@click.option("--force", is_flag=True, help="Check even if this instance was already checked.")
@click.option("--forget", is_flag=True,
              help="Forget the checked instance so the next boot checks again (the cloud-init clean hook).")
def firstboot_command(force: bool, forget: bool) -> None:
    """Check this machine once per cloud instance (guestcheck-firstboot.service runs it at every boot).

    Writes /var/lib/guestcheck/report.json, the node_exporter textfile and a short summary for the
    console and the journal, and applies the profile named in /etc/guestcheck/guestcheck.conf.
    Always exits 0, so it can never fail the boot.
    """
    roots = Roots.from_env()
    if forget:
        try:
            removed = forget_instance(roots)
        except OSError as e:
            raise click.ClickException(f"cannot forget the first boot: {e.strerror or e}") from None
        _emit(f"{PREFIX} forgot {', '.join(removed)}" if removed else f"{PREFIX} nothing to forget")
        return
    try:
        run(roots, force=force, emit=_emit)
    except Exception as e:  # last line of defence: the boot must go on
        _emit(f"{PREFIX} problem: internal error {type(e).__name__}: {e}")
