"""The tuner's guarded operations: what `guestcheck tune` and first boot ask for, each one call.

Each operation runs its guards, then the engine (engine.py):
  - sizing: `--rate` with `--rtt` or `--peer` sizes the TCP buffer ceilings to the path, bounded by memory;
  - the memory guard: a profile (or a sized apply) that raises buffer ceilings needs the memory to be there;
  - the owners guard, for every unit: another agent (TuneD, irqbalance, NetworkManager...) that would put its
    own value back refuses the change without --force; the others are said.
A guard that says no raises a typed refusal (Refused: its reason, the lines said before it, and the exit code
of every TuneError, 3); every other problem is a TuneError, one line. Nothing here prints: the callers
parse, call once and report.

This is the one module of the tuner that takes verdicts (the memory guarantee, the NIC's kind, who owns a
setting, the offload plan): they are imported in the "verdicts" section below and nowhere else in tune/.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from guestcheck.roots import Roots
from guestcheck.tune import TuneError, engine, guard
from guestcheck.tune.engine import RollbackResult
from guestcheck.tune.journal import SizingRecord, State, journal_text, load_state
from guestcheck.tune.live import ProcSys
from guestcheck.tune.owners import guard as check_owners
from guestcheck.tune.plan import Plan, plan_profile
from guestcheck.tune.profile import Profile
from guestcheck.tune.units.channels import ChannelsUnit
from guestcheck.tune.units.features import FeaturesUnit
from guestcheck.tune.units.nic import NicRequest, NicResult, check_interface
from guestcheck.tune.units.rings import RingsUnit
from guestcheck.tune.units.rps import RpsUnit, chosen_cpus, online_cpus
from guestcheck.tune.units.sysctl import ApplyResult, SysctlRequest, SysctlUnit
from guestcheck.tune.verify import Verification

# --- refusals --------------------------------------------------------------------------------------------

class Refused(TuneError):
    """A guard said no: nothing was changed (tune's exit code 3, TuneError's). `said`: the lines the operation
    had to say before it refused."""

    def __init__(self, message: str, said: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.said = list(said)


class MemoryRefused(Refused):
    """The memory guard: the memory the buffers would need is not guaranteed (`why`); --force applies it."""

    root_may_help = False  # root would be refused just the same

    def __init__(self, what: str, why: str, said: Sequence[str] = ()) -> None:
        super().__init__(f"refusing {what}: {why} (--force applies it anyway)", said)
        self.what, self.why = what, why


class OwnersRefused(Refused):
    """The owners guard: another agent would put its own value back over ours."""


class FactsUnreadable(TuneError):
    """--facts FILE could not be read as a facts file."""

    root_may_help = False


@contextlib.contextmanager
def _judging() -> Iterator[None]:
    """Errors while sizing and judging (a bad --rate, unknown RAM) are not a matter of being root."""
    try:
        yield
    except TuneError as e:
        e.root_may_help = False  # type: ignore[attr-defined]
        raise


# --- verdicts: the only imports of judging code in tune/ ------------------------------------------------------

def judged(facts: Any) -> Tuple[Any, Any]:
    """(the facts with the judge's verdicts in place (platform, NIC kinds), the Judged record), as doctor judges
    them: one judging, whose memory verdict the guards and the sizing then read."""
    from guestcheck.judge import judge, with_verdicts

    verdicts = judge(facts)
    return with_verdicts(facts, verdicts), verdicts


def nic_kind(nic: Any) -> None:
    """The tuner's own reading of one NIC gets its kind and software type (doctor does not flag a veth's GRO),
    judged outside a VM's tables."""
    from guestcheck.judge.nic import nic_verdict

    verdict = nic_verdict(nic, in_vm=False)
    nic.kind, nic.kind_reason, nic.software_type = verdict.kind, verdict.reason, verdict.software_type


def owners_of(roots: Roots) -> Callable[[str, Optional[str]], List[Any]]:
    """Who else manages a setting ("sysctl:KEY", "offloads", "rps", ...) on an interface, read under `roots`."""
    from guestcheck.collect.other_agents import collect_agents
    from guestcheck.judge.owners import other_owners

    agents = collect_agents(roots)
    return lambda setting, iface: other_owners(agents, setting, iface)


def offloads_to_enable(nic: Any, facts: Any = None) -> Tuple[Dict[str, List[str]], List[str]]:
    """The judge's offload plan for `tune offloads`: per label the features to turn on, causes first."""
    from guestcheck.judge.offload import offloads_to_enable as plan

    return plan(nic, facts)


# --- facts -----------------------------------------------------------------------------------------------------

class FactsSource:
    """This machine's facts, or a saved file's (--facts), judged by today's tables; read once, when needed."""

    def __init__(self, roots: Roots, facts_file: Optional[str] = None) -> None:
        self.roots, self.facts_file = roots, facts_file
        self._facts: Any = None
        self._judged: Any = None

    def verdict_of(self, facts: Any) -> Any:
        """The memory verdict on these facts (`.guaranteed`, `.reasons`): the judge's, judged once in get()."""
        if facts is None or facts is not self._facts:
            raise ValueError("verdict_of answers for the facts get() gave")
        return self._judged.memory

    def get(self) -> Any:
        if self._facts is None:
            if self.facts_file:
                from guestcheck.factsfile import FactsFileError, load_facts_file

                try:
                    facts = load_facts_file(self.facts_file)
                except FactsFileError as e:  # tune's own code for "could not do it", not verify's 1
                    raise FactsUnreadable(str(e)) from None
            else:
                from guestcheck.collect.machine import collect_facts

                facts = collect_facts(self.roots, sample_seconds=0)
            self._facts, self._judged = judged(facts)
        return self._facts


# --- the guards ------------------------------------------------------------------------------------------------

def owners_guard(roots: Roots, settings: Dict[str, Optional[str]], **options: Any) -> List[str]:
    """The lines to say before changing `settings` (owners.guard's options); OwnersRefused when another agent
    would put its own value back and neither --force nor --dry-run is given."""
    checked = check_owners(owners_of(roots), settings, **options)
    if checked.refusal:
        raise OwnersRefused(checked.refusal, checked.lines)
    return checked.lines


@dataclass
class MemoryGuard:
    result: Any  # guard.GuardResult
    what: str  # what was judged: the profile, or "PROFILE sized to the path"


def memory_guard(p: Profile, sized: bool, facts: FactsSource, plan: Plan) -> Optional[MemoryGuard]:
    """The memory guard on applying `plan` of profile `p`, or None when no guard applies. A sized apply grows
    buffers, so it is guarded whatever the profile says; the ceiling judged is the highest buffer ceiling the
    plan raises above the value in force (none raised: nothing to refuse)."""
    from guestcheck.tune.netpath import SIZING_GUARD

    guards = p.guards.merged(SIZING_GUARD) if sized else p.guards
    if not (guards.requires_guaranteed_memory or guards.min_ram_mb is not None):
        return None
    ceiling = guard.raised_ceiling((c.key, c.live, c.target) for c in plan.writes())
    judged_facts = facts.get() if ceiling else None
    what = f"{p.name} sized to the path" if sized and not p.guards.requires_guaranteed_memory else p.name
    return MemoryGuard(guard.check(guards, judged_facts, facts.verdict_of, ceiling=ceiling, sized=sized), what)


def _sized(p: Profile, path: Any, facts: FactsSource, state: Optional[State],
           procsys: ProcSys) -> Optional[Tuple[Profile, Any]]:
    """(the profile sized to the path, the Sizing), or None when no path was given."""
    from guestcheck.tune.netpath import size_path
    from guestcheck.tune.sizing import sized_profile

    if path is None:
        return None
    sizing = size_path(path, procsys, facts.get(), p.guards, facts.verdict_of)
    journal = state.sysctl if state else {}
    return sized_profile(p, sizing.ceiling_bytes, sizing.summary(),
                         lambda key: journal[key].original if key in journal else procsys.read(key)), sizing


@dataclass
class Diff:
    """What `tune diff` shows: the (sized) profile's plan, the sizing and the memory guard's verdict on it."""

    profile: Profile
    plan: Plan
    state: Optional[State]
    sizing: Any = None
    guarded: Optional[MemoryGuard] = None
    procsys: Optional[ProcSys] = None


def diff_profile(roots: Roots, p: Profile, *, rate: Optional[str] = None, rtt: Optional[str] = None,
                 peer: Optional[str] = None, facts_file: Optional[str] = None,
                 procsys: Optional[ProcSys] = None) -> Diff:
    """The plan of `p` (sized to the path when --rate is given) against the live kernel, and what the memory
    guard would say of applying it."""
    from guestcheck.tune.netpath import parse_path

    procsys = procsys or ProcSys(roots)
    facts = FactsSource(roots, facts_file)
    with _judging():
        state = load_state(roots)
        sized = _sized(p, parse_path(rate, rtt, peer), facts, state, procsys)
        guarded = memory_guard(p, sized is not None, facts, plan_profile(sized[0] if sized else p, roots, state,
                                                                         procsys))
        if sized is not None:
            p = sized[0]
        plan = plan_profile(p, roots, state, procsys)
    return Diff(p, plan, state, sized[1] if sized else None, guarded, procsys)


# --- operations ------------------------------------------------------------------------------------------------

def apply_profile(roots: Roots, p: Profile, *, dry_run: bool = False, force: bool = False,
                  rate: Optional[str] = None, rtt: Optional[str] = None, peer: Optional[str] = None,
                  facts_file: Optional[str] = None, procsys: Optional[ProcSys] = None) -> ApplyResult:
    """`tune apply` (and first boot's, with no --force): size, guard memory, guard owners, apply. The result's
    `said` holds what the guards and the sizing say before it; a refusal carries the lines said until then."""
    procsys = procsys or ProcSys(roots)
    said: List[str] = []
    diff = diff_profile(roots, p, rate=rate, rtt=rtt, peer=peer, facts_file=facts_file, procsys=procsys)
    if diff.guarded is not None:
        verdict, what = diff.guarded.result, diff.guarded.what
        why = "; ".join(verdict.reasons)
        if not verdict.allowed and not (force or dry_run):
            raise MemoryRefused(what, why)
        if not verdict.allowed:
            said.append(f"memory guard overridden by --force: {why}" if force else
                        f"note: apply would refuse {what} without --force: {why}")
        elif verdict.bounded or verdict.sized_below_min_ram:
            said.append(f"memory guard: {why}")
    record = None
    if diff.sizing is not None:
        p = diff.profile
        record = SizingRecord(diff.sizing.ceiling_bytes, diff.sizing.summary())
        said += diff.sizing.lines()
    # another agent (TuneD) setting the same keys: a warning, or a refusal without --force
    try:
        said += owners_guard(roots, {f"sysctl:{k}": s.value for k, s in p.settings.items()}, force=force,
                             dry_run=dry_run, raise_only={k: s.raise_only for k, s in p.settings.items()})
    except OwnersRefused as e:
        e.said = said + e.said
        raise
    result: ApplyResult = engine.apply(SysctlUnit(), SysctlRequest(p, record), roots, dry_run=dry_run,
                                       procsys=procsys)
    result.said = said + result.said
    return result


def apply_at_boot(roots: Roots, name: str) -> ApplyResult:
    """First boot's apply of profile `name` (from /etc/guestcheck/profiles or the shipped ones): what
    `guestcheck tune apply NAME` does, the memory and owners guards included; first boot has no --force."""
    from guestcheck.tune.profile import load, profile_dirs

    return apply_profile(roots, load(name, profile_dirs(roots.etc)))


def _nic(unit: Any, request: NicRequest, roots: Roots, settings: Dict[str, Optional[str]], *, dry_run: bool,
         force: bool = False, ethtool: Optional[Any] = None,
         unaffected: Optional[Callable[[Any], Optional[str]]] = None) -> NicResult:
    """A NIC unit's apply, after the owners guard (every NIC unit has one)."""
    said = owners_guard(roots, settings, iface=request.ifname, force=force, dry_run=dry_run, unaffected=unaffected)
    result: NicResult = engine.apply(unit, request, roots, dry_run=dry_run, ethtool=ethtool)
    result.said = said + result.said
    return result


def apply_offloads(ifname: str, roots: Roots, *, dry_run: bool = False, persist: bool = True, force: bool = False,
                   ethtool: Optional[Any] = None) -> NicResult:
    """`tune offloads IFACE`: the offloads doctor flags as off but changeable, what they depend on first, as
    doctor judges them (the NIC's kind, the offload plan), after the owners guard."""
    from guestcheck.collect.nics import collect_nic
    from guestcheck.facts import Facts
    from guestcheck.tune.ethtool_set import EthtoolWriter

    check_interface(roots, ifname)
    with ethtool or EthtoolWriter() as et:
        nic = collect_nic(roots, ifname, et)  # doctor's own view of the NIC
        if nic is None:
            raise TuneError(f"no network interface named {ifname!r} here")
        nic_kind(nic)
        if nic.features is None:
            raise TuneError(f"cannot read the offloads of {ifname}: {nic.unknown.get('features', 'unknown')}")
        facts = Facts(nics=[nic])
        for lower in nic.lowers or ():
            other = collect_nic(roots, lower, et)
            if other is not None:
                facts.nics.append(other)
        turn_on, notes = offloads_to_enable(nic, facts)
        request = NicRequest(ifname, persist, {"turn_on": turn_on, "notes": notes})
        return _nic(FeaturesUnit(), request, roots, {"offloads": None}, dry_run=dry_run, force=force, ethtool=et)


def apply_queues(ifname: str, roots: Roots, vcpus: Optional[int] = None, *, dry_run: bool = False,
                 persist: bool = True, force: bool = False, ethtool: Optional[Any] = None) -> Tuple[NicResult, int]:
    """`tune queues IFACE`: min(vCPUs, the device's maximum) channels, after the owners guard; with the vCPUs."""
    if vcpus is None:
        from guestcheck.collect.host import collect_host

        vcpus = collect_host(roots).vcpus
    result = _nic(ChannelsUnit(), NicRequest(ifname, persist, {"vcpus": vcpus}), roots, {"channels": None},
                  dry_run=dry_run, force=force, ethtool=ethtool)
    return result, vcpus


def apply_rings(ifname: str, roots: Roots, *, rx: Optional[int] = None, tx: Optional[int] = None,
                dry_run: bool = False, persist: bool = True, force: bool = False,
                ethtool: Optional[Any] = None) -> NicResult:
    """`tune rings IFACE`: RX and TX rings at the device's maximum (or --rx/--tx), after the owners guard."""
    return _nic(RingsUnit(), NicRequest(ifname, persist, {"rx": rx, "tx": tx}), roots, {"rings": None},
                dry_run=dry_run, force=force, ethtool=ethtool)


def apply_rps(ifname: str, roots: Roots, cpus: Optional[Set[int]] = None, *, asked: Optional[str] = None,
              force: bool = False, dry_run: bool = False, persist: bool = True,
              ethtool: Optional[Any] = None) -> Tuple[NicResult, Set[int]]:
    """`tune rps IFACE [--cpus LIST]`: every receive queue steers to the CPUs (every online one by default),
    after the owners guard (irqbalance cannot leave a mask over every online CPU behind); with the CPUs."""
    chosen = cpus if cpus is not None else chosen_cpus(roots, asked)
    every = chosen == online_cpus(roots)

    def unaffected(owner: Any) -> Optional[str]:
        return "the mask covers every online CPU, wherever the interrupt goes" if every else None

    result = _nic(RpsUnit(), NicRequest(ifname, persist, {"cpus": chosen}), roots, {"rps": None},
                  dry_run=dry_run, force=force, ethtool=ethtool, unaffected=unaffected)
    return result, chosen


def verify(roots: Roots, p: Optional[Profile]) -> Optional[Verification]:
    """Against a profile, or against what the journal says was applied; None when there is nothing to verify."""
    from guestcheck.tune.verify import verify_profile

    state = load_state(roots)
    if state is None and p is None:
        return None
    if p is None:
        return engine.verify_journal(roots, state)  # type: ignore[arg-type]
    v = verify_profile(p, roots, state)
    nic = engine.touched_nic_units(state) if state else []
    if nic:
        v.notes.append(f"the journal also holds {'/'.join(nic)}, which no profile sets: "
                       "`guestcheck tune verify` checks them")
    return v


def rollback(roots: Roots, *, dry_run: bool = False, leave: Sequence[str] = (),
             procsys: Optional[ProcSys] = None, ethtool: Optional[Any] = None) -> RollbackResult:
    """Everything guestcheck changed back as it was (engine.rollback)."""
    return engine.rollback(roots, dry_run=dry_run, leave=leave, procsys=procsys, ethtool=ethtool)


def recommend(roots: Roots, dirs: Sequence[str], *, facts_file: Optional[str] = None, rate: Optional[str] = None,
              rtt: Optional[str] = None, peer: Optional[str] = None) -> Any:
    """The profile for this machine and why; with a path, the buffer sizes too."""
    from guestcheck.tune.netpath import parse_path
    from guestcheck.tune.recommend import recommend as choose

    with _judging():
        path = parse_path(rate, rtt, peer)
        facts = FactsSource(roots, facts_file)
        return choose(facts.get(), dirs, facts.verdict_of, path=path, procsys=ProcSys(roots))


# --- first boot: an apply the time limit cut off ---------------------------------------------------------------

def journal_mark(roots: Roots) -> Optional[str]:
    """The journal as it is now (None: none), to tell afterwards whether a run began."""
    return journal_text(roots)


@dataclass
class CutApply:
    """What became of an apply cut off by a time limit: "untouched" (nothing began), "finished" (it completed
    as it was cut), or "rolled back" (from its journal: `actions` undone)."""

    outcome: str
    actions: List[str] = field(default_factory=list)


def undo_cut_apply(roots: Roots, before: Optional[str]) -> CutApply:
    """Roll back an apply that was cut off, from its journal; TuneError when rolling back fails. The journal is
    written before the first change and marked complete after the last, so an unchanged journal means nothing
    was touched, and a complete new one means the apply had finished."""
    if journal_text(roots) == before:
        return CutApply("untouched")
    state = load_state(roots)
    if state is not None and state.complete:
        return CutApply("finished")
    return CutApply("rolled back", rollback(roots).actions)
