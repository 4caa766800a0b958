"""What a collector gets: the one record the collection loop (guestcheck/collect/machine.py) hands each area.

A collector module declares the Facts field it fills and how:

    AREA = "memory"          # the Facts field
    SAMPLED = True           # optional: runs after the counter sample and reads `run.counters`
    def collect(run: Run) -> Memory: ...

The loop finds such modules in guestcheck/collect/ by themselves, runs them in the order of Facts' fields
(those that need the sample after it), and isolates them: one that raises leaves a typed problem naming its
area, and every other area is still collected. So adding an area touches its collector, its Facts field, its
check and its test, and no list.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from guestcheck.facts import Facts, Problem
from guestcheck.roots import Roots


class Run:
    """One collection: where to read, what earlier areas found (`facts`), and where problems go."""

    __slots__ = ("counters", "cpuid_reader", "driver_stats", "ethtool", "facts", "roots")

    def __init__(self, roots: Roots, facts: Facts, *, ethtool: Any = None,
                 cpuid_reader: Optional[Callable[[], Optional[str]]] = None, counters: Any = None) -> None:
        self.roots = roots
        self.facts = facts  # areas earlier in Facts' order are filled already (nics before softirq)
        self.ethtool = ethtool  # an injected EthtoolSource (tests); None: the machine's, opened where needed
        self.cpuid_reader = cpuid_reader
        self.counters = counters  # the CounterSample: given by a test, else taken by the loop before SAMPLED areas
        self.driver_stats = counters is not None  # NIC driver counters read now, not by the sample's two readings

    def problem(self, problem: Problem) -> None:
        self.facts.problems.append(problem)

    def note(self, text: str) -> None:
        self.problem(Problem.note(text))

    def incomplete(self, text: str) -> None:
        """A whole area could not be read."""
        self.facts.complete = False
        self.note(text)
