"""What the NIC units (features, channels, rings, rps) share: one apply order, one journal slot shape, one
persisted .link file (and udev rule) per interface, verify and rollback.

Apply, for one unit on one interface, under the tuner's lock:
  1. the journal gets the unit's original values and, when persisting, what was at the .link and rule paths;
  2. the live values are written through ethtool and read back;
  3. the .link file (and a udev rule where a .link cannot say it) is written atomically;
  4. the journal is marked complete.
A failure in 2 or 3 puts the live values and the journal back as they were.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune import linkfile as lf
from guestcheck.tune.ethtool_set import EthtoolWriter
from guestcheck.tune.persist import ABSENT, FILE, inspect
from guestcheck.tune.state import LinkRecord, State, check_fits, load_state
from guestcheck.tune.units.base import Check, RollbackContext, RollbackPlan, UnitVerification

Values = Dict[str, Any]


@dataclass
class NicResult:
    ifname: str
    planned: Dict[str, str] = field(default_factory=dict)  # what -> "before -> after"
    done: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    nothing_to_do: bool = False
    persisted: List[str] = field(default_factory=list)  # the files written for the next boot


class NicUnit:
    """One NIC subsystem. Subclasses say how to read, write and persist their values."""

    name = ""
    what = ""  # "offloads", "channel counts", "ring sizes"
    label = ""  # "offloads", "queues", "rings": how `verify` names what the journal holds

    def read(self, et: Any, ifname: str) -> Values:
        raise NotImplementedError

    def snapshot(self, et: Any, ifname: str) -> Values:
        """What the journal keeps as the original (rollback writes it back)."""
        return self.read(et, ifname)

    def write(self, et: Any, ifname: str, values: Values) -> None:
        raise NotImplementedError

    def originals(self, state: State) -> Dict[str, Values]:
        raise NotImplementedError

    def link_settings(self, applied: Values) -> Tuple[Dict[str, str], Dict[str, str]]:
        """(.link [Link] settings, udev rule ethtool args for what a .link file cannot say)."""
        raise NotImplementedError

    def rule_args(self, applied: Values) -> Dict[str, str]:
        """Everything as ethtool args, for when another .link file wins and only a rule can carry it."""
        raise NotImplementedError

    def show(self, value: Any) -> str:
        return str(value)

    def access(self, roots: Roots, et: Any) -> Any:
        """What read/write/restore are given: the ethtool writer (the RPS unit wraps it with the sysfs files)."""
        return et

    # --- verify and rollback, the same for every NIC unit -------------------------------------------------

    def touched(self, state: State) -> bool:
        return bool(self.originals(state))

    def verify(self, roots: Roots, state: State, et: Optional[Any] = None) -> UnitVerification:
        """The live values of each tuned device, found by its identity (identity.py): under a new name when it
        was renamed; a different device that took the name is a problem, never checked in its place."""
        from guestcheck.tune.identity import locate
        from guestcheck.tune.live import ProcSys, boot_id

        out = UnitVerification()
        applied = state.applied.get(self.name, {})
        if not applied:
            return out
        boot = boot_id(ProcSys(roots))
        with et or EthtoolWriter() as opened:
            et = self.access(roots, opened)
            for ifname, values in applied.items():
                where = locate(roots, et, state, ifname, boot)
                if where.name is None and where.other:
                    out.problems.append(f"{where.refusal()}: its {self.what} were not checked")
                    continue
                name = where.name or ifname
                if where.renamed:
                    out.notes.append(f"{name} is the device tuned as {ifname} (renamed since)")
                try:
                    live = self.read(et, name)
                except EthtoolError as e:
                    out.problems.append(f"{name}: cannot read its {self.what} ({e})")
                    continue
                for k, want in values.items():
                    have = live.get(k)
                    out.checks.append(Check(f"{name} {k}", self.show(want), None if have is None else self.show(have),
                                            have == want, "" if have == want else "changed since tune"))
                record = state.links.get(ifname)
                if record is None:
                    out.notes.append(f"{name}: {self.what} set live only (--no-persist): the next boot undoes them")
                    continue
                settings, leftover = (self.link_settings(values) if record.settings or not record.rule_args
                                      else ({}, self.rule_args(values)))
                for key, value in settings.items():
                    if record.settings.get(key) != value:
                        out.problems.append(f"{ifname}: the journal's .link settings lack {key}={value}")
                for key, value in leftover.items():
                    if record.rule_args.get(key) != value:
                        out.problems.append(f"{ifname}: the journal's udev rule lacks {key[2:]} {value}")
        return out

    def _targets(self, ctx: RollbackContext, notes: List[str]) -> Iterator[Tuple[str, str, Values]]:
        """(journal name, the device's name now, originals) for each device to restore; notes for the others."""
        for ifname, original in self.originals(ctx.state).items():
            if ctx.rebooted and ifname not in ctx.state.links:
                notes.append(f"{ifname}: {self.what} were changed live only, and the reboot since put them "
                             "back: nothing to restore")
                continue
            where = ctx.where.get(ifname)
            if ifname in ctx.leave:
                notes.append(f"{ifname}: its {self.what} were left as they are (--leave)")
                continue
            if where is not None and where.name is None:
                notes.append(f"{ifname}: interface gone, its {self.what} were not restored")
                continue
            if where is not None and where.other:
                notes.append(f"{ifname} is now another device ({where.other}): left alone")
            yield ifname, (where.name if where is not None and where.name else ifname), original

    def rollback_plan(self, ctx: RollbackContext) -> RollbackPlan:
        plan = RollbackPlan()
        for ifname, name, _original in self._targets(ctx, plan.notes):
            plan.actions.append(f"{name}: restore {self.what}" + (f" (tuned as {ifname})" if name != ifname else ""))
            plan.todo = True
        return plan

    def rollback(self, ctx: RollbackContext, plan: RollbackPlan, notes: List[str]) -> List[str]:
        errors = []
        for _ifname, name, original in self._targets(ctx, []):
            try:
                self.restore(self.access(ctx.roots, ctx.ethtool()), name, original)
            except EthtoolError as e:
                if e.reason == "no-device":
                    notes.append(f"{name}: interface gone, its {self.what} were not restored")
                else:
                    errors.append(f"{name}: {e}")
        return errors

    def restore(self, et: Any, ifname: str, original: Values) -> None:
        self.write(et, ifname, original)


# --- the shared apply -----------------------------------------------------------------------------------

@contextlib.contextmanager
def journalled(roots: Roots) -> Iterator[Tuple[Optional[State], State]]:
    """The lock, and the journal as it was plus a copy marked in progress for this run to fill in. After a
    reboot, live-only NIC settings are gone: today's values are the originals; persisted ones are kept."""
    from guestcheck.tune.apply import io_errors, locked
    from guestcheck.tune.live import ProcSys, boot_id

    with io_errors("nothing was changed"), locked(roots):
        old = load_state(roots)
        journal = old.copy() if old else State()
        journal.complete = False
        current = boot_id(ProcSys(roots))
        if journal.boot_id != current:  # (a journal with NIC identities of another boot: see identity.py)
            if journal.boot_id and current:
                forget_live_only(journal)
            journal.boot_id = current
        yield old, journal


def forget_live_only(journal: State) -> None:
    from guestcheck.tune.identity import forget_unused
    from guestcheck.tune.units import NIC_UNITS

    for unit in NIC_UNITS:
        slot = unit.originals(journal)
        for ifname in [i for i in slot if i not in journal.links]:
            del slot[ifname]
            journal.applied.get(unit.name, {}).pop(ifname, None)
    forget_unused(journal)


def check_interface(roots: Roots, ifname: str) -> None:
    from guestcheck.names import valid_ifname

    if not valid_ifname(ifname) or not os.path.isdir(os.path.join(roots.sys, "class/net", ifname)):
        from guestcheck.text import escape_control

        raise TuneError(f"no network interface named {escape_control(repr(ifname))} here")


def apply_nic(unit: NicUnit, ifname: str, roots: Roots, et: Any, target: Values, *, persist: bool,
              result: NicResult) -> Values:
    """Write `target` (a subset of the unit's values) live, journal it, persist it; returns what reads back."""
    from guestcheck.tune.apply import save_state
    from guestcheck.tune.identity import check_same, forget_unused

    with journalled(roots) as (old, journal):
        check_same(roots, et, journal, ifname, journal.boot_id)  # the device, not only its name
        try:
            original = unit.snapshot(et, ifname)
        except EthtoolError as e:
            raise TuneError(f"cannot read the {unit.what} of {ifname}: {e}") from None
        unit.originals(journal).setdefault(ifname, original)
        pending = None
        if persist:
            pending = _prepare_link(unit, roots, et, journal, ifname, target, result)
        check_fits(journal)  # what rollback must read, before anything changes: now and once complete
        check_fits(_at_most(unit, journal, ifname, target), slack=READ_BACK_SLACK)
        save_state(roots, journal)  # 1. the journal first
        try:
            unit.write(et, ifname, target)  # 2. live
            after = unit.read(et, ifname)
        except EthtoolError as e:
            _undo(unit, et, ifname, original)
            save_state(roots, old)
            raise TuneError(f"cannot set the {unit.what} of {ifname}: {e}; nothing was changed") from None
        applied = journal.applied.setdefault(unit.name, {}).setdefault(ifname, {})
        applied.update({k: after[k] for k in target if k in after})
        if pending is not None:
            try:
                _write_link(roots, unit, journal, ifname, applied, pending, result)  # 3. the next boot
            except (OSError, TuneError) as e:
                _undo(unit, et, ifname, original)
                _unwrite_link(roots, old, journal, ifname)
                save_state(roots, old)
                why = str(e) if isinstance(e, TuneError) else f"cannot write {e.filename}: {e.strerror}"
                raise TuneError(f"{why}; undid the live change: the system is as it was") from None
        if all(original.get(k) == v for k, v in after.items() if k in original):
            del unit.originals(journal)[ifname]  # nothing differs from the original any more
            journal.applied.get(unit.name, {}).pop(ifname, None)
        journal.applied = {u: per for u, per in journal.applied.items() if per}
        forget_unused(journal)
        journal.complete = True
        save_state(roots, journal)  # 4. complete
        return after


READ_BACK_SLACK = 4096  # the values read back may be longer than the ones asked for (digits): never by more


def _at_most(unit: NicUnit, journal: State, ifname: str, target: Values) -> State:
    """The journal as this run can leave it at most: every target value applied, and every unit's settings
    in the .link file and the rule both (what is written is a subset), so its size is known before a change."""
    final = journal.copy()
    final.applied.setdefault(unit.name, {}).setdefault(ifname, {}).update(target)
    record = final.links.get(ifname)
    if record is not None:
        settings, leftover = unit.link_settings(target)
        record.settings.update(settings)
        record.rule_args.update(leftover)
        for each in (unit, *_other_units(unit)):
            values = final.applied.get(each.name, {}).get(ifname)
            if values:
                record.rule_args.update(each.rule_args(values))
    final.complete = True
    return final


def _undo(unit: NicUnit, et: Any, ifname: str, original: Values) -> None:
    with contextlib.suppress(EthtoolError):
        unit.restore(et, ifname, original)


@dataclass
class _Pending:
    conflicts: List[lf.LinkConflict]
    replaced: Optional[str]


def _prepare_link(unit: NicUnit, roots: Roots, et: Any, journal: State, ifname: str, target: Values,
                  result: NicResult) -> _Pending:
    """Record (in the journal, before anything changes) what is at our paths, and decide .link or rule."""
    link_name, rule_name = lf.file_names(ifname)
    for d in (lf.our_dir(roots), lf.rules_dir(roots)):
        lf.safe_path(d, "x", roots.top)
    perm = None
    with contextlib.suppress(EthtoolError, AttributeError):
        perm = et.perm_addr(ifname)
    dev = lf.device(roots, ifname, perm)
    record = journal.links.get(ifname)
    replaced = None
    if record is None:
        applying, notes = lf.applying_now(roots, dev, skip=link_name)
        result.notes.extend(notes)
        replaced = applying.path if applying else None
        now = inspect(lf.safe_path(lf.our_dir(roots), link_name, roots.top))
        refusal = now.refusal()
        if refusal:
            raise TuneError(f"{refusal}; nothing was changed")
        record = LinkRecord(name=link_name, match=dev.match_lines(), carried=lf.carried_lines(applying, ifname),
                            original=now.content if now.kind == FILE else None, mode=now.mode)
        journal.links[ifname] = record
    if not record.rule_recorded:
        now = inspect(lf.safe_path(lf.rules_dir(roots), rule_name, roots.top))
        refusal = now.refusal()
        if refusal:
            raise TuneError(f"{refusal}; nothing was changed")
        record.rule_name, record.rule_original, record.rule_mode = rule_name, now.content, now.mode
        record.rule_recorded = True
    return _Pending(lf.conflicts(roots, dev, link_name), replaced)


def _write_link(roots: Roots, unit: NicUnit, journal: State, ifname: str, applied: Values, pending: _Pending,
                result: NicResult) -> None:
    record = journal.links[ifname]
    wins = [c for c in pending.conflicts if c.certain]
    if any(each.link_settings(journal.applied.get(each.name, {}).get(ifname) or {})[0]
           for each in (unit, *_other_units(unit))):  # (RPS alone has no .link setting: who wins is moot)
        for c in pending.conflicts:
            result.notes.append(c.describe(record.name))
    mine = _unit_keys(unit)
    record.settings = {k: v for k, v in record.settings.items() if k not in mine["link"]}
    record.rule_args = {k: v for k, v in record.rule_args.items() if k[:2] not in mine["rule"]}
    if wins:
        record.rule_args.update(unit.rule_args(applied))
        for other in _other_units(unit):  # everything goes to the rule: a .link file of ours would not apply
            values = journal.applied.get(other.name, {}).get(ifname)
            if values:
                record.rule_args.update(other.rule_args(values))
        record.settings = {}
    else:
        settings, leftover = unit.link_settings(applied)
        record.settings.update(settings)
        record.rule_args.update(leftover)
    why = rule_reason(record)
    put_link_files(roots, ifname, record, why)
    if record.settings:
        result.persisted.append(os.path.join(lf.our_dir(roots), record.name)
                                + (f" (replaces {pending.replaced} for {ifname})" if pending.replaced else ""))
    if record.rule_args and record.rule_name:
        result.persisted.append(f"{os.path.join(lf.rules_dir(roots), record.rule_name)} ({why})")


def rule_reason(record: LinkRecord) -> str:
    """Why a udev rule carries what it does (said in the rule's comment and in the report)."""
    if record.rule_args and not record.settings and any(_in_a_link_file(k) for k in record.rule_args):
        return ("another .link file matches this interface and sorts before guestcheck's, so udev would never "
                "apply a .link file of ours")
    lacking = []
    for arg in sorted(record.rule_args, key=lambda k: (k.startswith("R:"), k)):
        kind, _, name = arg.partition(":")
        what = {"K": "scatter-gather (tx-scatter-gather)" if name == "tx-scatter-gather" else name,
                "G": f"the {name} ring", "R": "Receive Packet Steering (rps_cpus)"}.get(kind, name)
        if not _in_a_link_file(arg) and what not in lacking:
            lacking.append(what)
    return f"systemd 252's .link files have no setting for {' or '.join(lacking) or 'it'}"


def _in_a_link_file(arg: str) -> bool:
    """Whether a rule arg ("K:rx-gro", "L:combined", "R:rx-0") has a .link setting that says it."""
    kind, _, name = arg.partition(":")
    return {"K": name in lf.FEATURE_SETTING, "L": name in lf.CHANNEL_SETTING,
            "G": name in lf.RING_SETTING}.get(kind, False)


def _unit_keys(unit: NicUnit) -> Dict[str, set]:
    keys = {"features": (set(lf.FEATURE_SETTING.values()), {"K:"}),
            "channels": (set(lf.CHANNEL_SETTING.values()), {"L:"}),
            "rings": (set(lf.RING_SETTING.values()), {"G:"}),
            "rps": (set(), {"R:"})}[unit.name]
    return {"link": keys[0], "rule": keys[1]}


def _other_units(unit: NicUnit) -> List[NicUnit]:
    from guestcheck.tune.units import NIC_UNITS

    return [u for u in NIC_UNITS if u.name != unit.name]


def link_content(record: LinkRecord) -> Optional[str]:
    if not record.settings:
        return record.original
    return lf.link_text(record.name[len(lf.OUR_PREFIX):-len(".link")], record.match, record.carried,
                        record.settings, None)


def rule_content(record: LinkRecord, why: str) -> Optional[str]:
    if not record.rule_args:
        return record.rule_original
    return lf.rule_text(record.name[len(lf.OUR_PREFIX):-len(".link")], record.match, record.rule_args, why)


def _unwrite_link(roots: Roots, old: Optional[State], journal: State, ifname: str) -> None:
    """After a failed persist: the .link file and rule back as the journal being restored says (this
    interface's earlier guestcheck files, or what was there before guestcheck), so no file is left that no
    journal records and udev would still apply at the next boot."""
    prior = old.links.get(ifname) if old is not None else None
    written = journal.links.get(ifname)
    if prior is None and written is None:
        return
    record = prior or LinkRecord(**{**written.__dict__, "settings": {}, "rule_args": {}})  # type: ignore[union-attr]
    with contextlib.suppress(OSError, TuneError):  # best effort: the error being raised says what failed
        put_link_files(roots, ifname, record, "")


def put_link_files(roots: Roots, ifname: str, record: LinkRecord, why: str) -> None:
    """Make the .link file and the rule hold what the record says (or their originals), atomically."""
    from guestcheck.tune.apply import put_persist

    path = lf.safe_path(lf.our_dir(roots), record.name, roots.top)
    put_persist(_checked(path), link_content(record), 0o644 if record.settings else record.mode)
    if record.rule_name:
        rule = lf.safe_path(lf.rules_dir(roots), record.rule_name, roots.top)
        put_persist(_checked(rule), rule_content(record, why or rule_reason(record)),
                    0o644 if record.rule_args else record.rule_mode)


def _checked(path: str):  # type: ignore[no-untyped-def]
    now = inspect(path)
    refusal = now.refusal()
    if refusal:
        raise TuneError(refusal)
    return now


def verify_links(roots: Roots, state: State) -> UnitVerification:
    """What the next boot applies: our .link file (and rule) hold what the journal says, and no other .link
    file sorts before ours and matches the interface."""
    out = UnitVerification()
    for ifname, record in state.links.items():
        path = os.path.join(lf.our_dir(roots), record.name)
        if record.settings:
            now = inspect(path)
            if now.kind != FILE or now.content is None:
                out.problems.append(f"{path} is {'missing' if now.kind == ABSENT else 'not a regular file'}: "
                                    f"{ifname}'s settings will not survive a reboot")
            else:
                sections = lf.parse_link(now.content)
                have = dict(sections.get("Link", []))
                for key, value in record.settings.items():
                    ok = have.get(key) == value
                    out.checks.append(Check(f"{ifname} next boot {key}", value, have.get(key), ok,
                                            "" if ok else f"{path} was edited since tune"))
                if [f"{k}={v}" for k, v in sections.get("Match", [])] != record.match:
                    out.problems.append(f"{path}: its [Match] is not the one guestcheck wrote")
            dev = lf.device(roots, ifname, _value(record.match, "PermanentMACAddress"))
            dev.original_name = _value(record.match, "OriginalName") or dev.original_name
            dev.mac = _value(record.match, "MACAddress") or dev.mac
            for c in lf.conflicts(roots, dev, record.name):
                (out.problems if c.certain else out.notes).append(c.describe(record.name))
        if record.rule_args and record.rule_name:
            rule = os.path.join(lf.rules_dir(roots), record.rule_name)
            now = inspect(rule)
            expected = lf.rule_expected(record.rule_args)
            text = now.content or ""
            missing = [e for e in expected if e not in text]
            ok = now.kind == FILE and not missing
            out.checks.append(Check(f"{ifname} next boot udev rule", ", ".join(expected),
                                    "missing" if now.kind != FILE else ("edited" if missing else ", ".join(expected)),
                                    ok, "" if ok else f"{rule} does not hold it"))
    return out


def _value(match: List[str], key: str) -> Optional[str]:
    for line in match:
        k, _, v = line.partition("=")
        if k == key:
            return v
    return None


class LinkFilesUnit:
    """The NIC units' persistence: the .link file (and udev rule) per interface that the next boot applies.
    Verified and rolled back after the live NIC values."""

    name = "links"
    label = ".link files"

    def touched(self, state: State) -> bool:
        return bool(state.links)

    def verify(self, roots: Roots, state: State) -> UnitVerification:
        return verify_links(roots, state)

    def rollback_plan(self, ctx: RollbackContext) -> RollbackPlan:
        actions = links_to_restore(ctx.roots, ctx.state)
        return RollbackPlan(actions=actions, todo=bool(actions))

    def rollback(self, ctx: RollbackContext, plan: RollbackPlan, notes: List[str]) -> List[str]:
        return restore_links(ctx.roots, ctx.state, notes)


def restore_links(roots: Roots, state: State, notes: List[str]) -> List[str]:
    """Put our .link paths (and rules) back as they were: removed, or the file that was there, exactly."""
    errors = []
    for ifname, record in state.links.items():
        record = LinkRecord(**{**record.__dict__, "settings": {}, "rule_args": {}})
        try:
            put_link_files(roots, ifname, record, "")
        except TuneError as e:
            notes.append(f"{e}: left as it is")
        except OSError as e:
            errors.append(f"cannot restore {e.filename}: {e.strerror}")
    return errors


def links_to_restore(roots: Roots, state: State) -> List[str]:
    actions = []
    for record in state.links.values():
        for directory, name, original in ((lf.our_dir(roots), record.name, record.original),
                                          (lf.rules_dir(roots), record.rule_name, record.rule_original)):
            if not name:
                continue
            now = inspect(os.path.join(directory, name))
            if now.kind == ABSENT and original is None:
                continue
            if now.kind == FILE and now.content == original:
                continue
            actions.append(f"{'remove' if original is None else 'restore'} {os.path.join(directory, name)}")
    return actions
