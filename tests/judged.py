"""Verdicts for hand-built facts in tests: the kinds and platform a test wrote into its Facts, taken as they are.

The checks take `(facts, judged)`. A unit test of one check often builds a NIC with `kind="emulated"` or a
`Virt(hypervisor="kvm")` without the raw evidence the judge decides from; `recorded(facts)` gives the checks
those verdicts (and the ones that follow from them: memory, offload plan, owners), as the test meant them.
"""

from __future__ import annotations

from typing import Tuple

from guestcheck.facts import Facts
from guestcheck.judge import Judged, assemble
from guestcheck.judge.nic import NicVerdict


def recorded(facts: Facts) -> Judged:
    """The verdicts `facts` carries (virt; each NIC's kind, kind_reason, software_type), not judged again."""
    return assemble(facts, facts.virt, tuple(NicVerdict(n.kind, n.kind_reason, n.software_type) for n in facts.nics))


def with_recorded(facts: Facts) -> Tuple[Facts, Judged]:
    """`check.run(*with_recorded(facts))`: a check run on the verdicts the test wrote."""
    return facts, recorded(facts)
