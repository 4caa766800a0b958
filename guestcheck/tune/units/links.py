"""The .link files unit: what carries the NIC units' settings over a reboot, one per tuned interface.

systemd's .link file (/etc/systemd/network/50-guestcheck-IFACE.link) where it can say a setting, and a udev
rule (/etc/udev/rules.d/90-guestcheck-IFACE.rules) for what it cannot (or for everything, when another
.link file matching the interface sorts before ours). The NIC units' runs write them as their persist step
(prepare_link records what was at our paths in the journal first; write_link writes them); this unit
verifies them and, after the NIC units' live values, rolls them back.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune import linkfile as lf
from guestcheck.tune.journal import LinkRecord, State
from guestcheck.tune.persist import ABSENT, FILE, inspect, put_persist
from guestcheck.tune.units.base import Check, RollbackContext, RollbackPlan, UnitVerification


@dataclass
class Pending:
    conflicts: List[lf.LinkConflict]
    replaced: Optional[str]


def prepare_link(roots: Roots, et: Any, journal: State, ifname: str, notes: List[str]) -> Pending:
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
        applying, found = lf.applying_now(roots, dev, skip=link_name)
        notes.extend(found)
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
    return Pending(lf.conflicts(roots, dev, link_name), replaced)


def write_link(roots: Roots, unit: Any, others: Sequence[Any], journal: State, ifname: str, applied: Dict[str, Any],
               pending: Pending, notes: List[str], persisted: List[str]) -> None:
    """Persist `unit`'s applied values for `ifname`: in the .link file, and the udev rule for what a .link file
    cannot say; everything in the rule when another .link file wins (`others`: the other NIC units, whose
    settings the same files carry)."""
    record = journal.links[ifname]
    wins = [c for c in pending.conflicts if c.certain]
    if any(each.link_settings(journal.applied.get(each.name, {}).get(ifname) or {})[0]
           for each in (unit, *others)):  # (RPS alone has no .link setting: who wins is moot)
        for c in pending.conflicts:
            notes.append(c.describe(record.name))
    mine = _unit_keys(unit)
    record.settings = {k: v for k, v in record.settings.items() if k not in mine["link"]}
    record.rule_args = {k: v for k, v in record.rule_args.items() if k[:2] not in mine["rule"]}
    if wins:
        record.rule_args.update(unit.rule_args(applied))
        for other in others:  # everything goes to the rule: a .link file of ours would not apply
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
        persisted.append(os.path.join(lf.our_dir(roots), record.name)
                         + (f" (replaces {pending.replaced} for {ifname})" if pending.replaced else ""))
    if record.rule_args and record.rule_name:
        persisted.append(f"{os.path.join(lf.rules_dir(roots), record.rule_name)} ({why})")


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


def _unit_keys(unit: Any) -> Dict[str, set]:
    keys = {"features": (set(lf.FEATURE_SETTING.values()), {"K:"}),
            "channels": (set(lf.CHANNEL_SETTING.values()), {"L:"}),
            "rings": (set(lf.RING_SETTING.values()), {"G:"}),
            "rps": (set(), {"R:"})}[unit.name]
    return {"link": keys[0], "rule": keys[1]}


def link_content(record: LinkRecord) -> Optional[str]:
    if not record.settings:
        return record.original
    return lf.link_text(record.name[len(lf.OUR_PREFIX):-len(".link")], record.match, record.carried,
                        record.settings, None)


def rule_content(record: LinkRecord, why: str) -> Optional[str]:
    if not record.rule_args:
        return record.rule_original
    return lf.rule_text(record.name[len(lf.OUR_PREFIX):-len(".link")], record.match, record.rule_args, why)


def unwrite_link(roots: Roots, old: Optional[State], journal: State, ifname: str) -> None:
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
