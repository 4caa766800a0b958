"""Judging: the verdicts that are not findings, decided in one place from the raw facts.

Collectors record what the machine said; `judge(facts)` decides what it means (the platform, each NIC's kind,
the memory guarantee, who else owns a setting, the offload plan) by today's tables, so `doctor --facts FILE`
judges a facts file written by an older guestcheck the same way. It returns a frozen `Judged` and never changes
the Facts: the checks read both, tune, watch and first boot take their verdicts from here, and the JSON
renderer merges the verdict fields back in (`with_verdicts`), so facts/1 keeps its shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from guestcheck.facts import Facts, Nic, OtherAgents, Virt
from guestcheck.judge.memory import MemoryVerdict, memory_verdict
from guestcheck.judge.nic import NicVerdict, nic_verdict
from guestcheck.judge.offload import OffGroup, off_groups
from guestcheck.judge.owners import Owner, other_owners
from guestcheck.judge.virt import judge_virt


@dataclass(frozen=True)
class Judged:
    """Every verdict on one Facts. `nics` follows `facts.nics` index for index."""

    virt: Virt  # the platform: hypervisor, cloud, container, with the evidence weighed
    nics: Tuple[NicVerdict, ...]
    memory: MemoryVerdict
    offloads: Tuple[Tuple[OffGroup, ...], ...]  # per NIC (same index): the offload groups that are off, planned
    agents: Optional[OtherAgents] = None  # what `owners` answers from
    _index: Dict[int, int] = field(default_factory=dict, repr=False, compare=False)  # id(Nic) -> index

    def nic(self, nic: Nic) -> NicVerdict:
        """The verdict on one of the judged facts' NICs (by identity: names may repeat in a damaged file)."""
        return self.nics[self._index[id(nic)]]

    def offload_groups(self, nic: Nic) -> Tuple[OffGroup, ...]:
        return self.offloads[self._index[id(nic)]]

    def kind(self, nic: Nic) -> str:
        return self.nic(nic).kind

    def software_type(self, nic: Nic) -> Optional[str]:
        return self.nic(nic).software_type

    def owners(self, setting: str, iface: Optional[str] = None) -> List[Owner]:
        """Every other agent that manages `setting` (on `iface`, for NIC settings)."""
        return other_owners(self.agents, setting, iface)


def judge(facts: Facts) -> Judged:
    """Today's verdicts on `facts`, whatever verdicts a saved facts file carried; `facts` is left as it is."""
    virt = judge_virt(facts.virt)  # first: a NIC's kind depends on being in a VM
    return assemble(facts, virt, tuple(nic_verdict(n, in_vm=virt.hypervisor is not None) for n in facts.nics))


def assemble(facts: Facts, virt: Virt, nics: Tuple[NicVerdict, ...]) -> Judged:
    """The verdicts that follow from a platform and the NICs' kinds (judge's, or a test's own)."""
    return Judged(virt, nics, memory_verdict(facts, virt), tuple(off_groups(facts, n) for n in facts.nics),
                  facts.agents, {id(n): i for i, n in enumerate(facts.nics)})


def with_verdicts(facts: Facts, judged: Judged) -> Facts:
    """A copy of `facts` carrying the verdicts where facts/1 shows them (virt; each NIC's kind, kind_reason and
    software_type): what `guestcheck facts --json` writes and the tuner's guards read. `facts` is unchanged."""
    nics = [dataclasses.replace(n, kind=v.kind, kind_reason=v.reason, software_type=v.software_type)
            for n, v in zip(facts.nics, judged.nics)]
    return dataclasses.replace(facts, virt=judged.virt, nics=nics)


def judged_facts(facts: Facts) -> Facts:
    """`facts` judged by today's tables, as a new Facts with the verdicts in place (see with_verdicts)."""
    return with_verdicts(facts, judge(facts))
