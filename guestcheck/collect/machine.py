"""The collection orchestrator: runs every area's collector, in one loop, each isolated from the others' failures.

The collectors are found, not listed: every module in guestcheck/collect/ that declares `AREA` (the Facts field
it fills) and `collect(run)` is one (see guestcheck/collect/area.py). They run in the order of Facts' fields;
those that declare `SAMPLED = True` run after the counter sample, from it. A collector that raises leaves its
area at the Facts default, `complete` False and a "failed" problem naming the area; the others still run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import time
from types import ModuleType
from typing import Any, Callable, ContextManager, Dict, List, Optional, Tuple

from guestcheck import __version__
from guestcheck.collect.area import Run
from guestcheck.collect.counters import CounterSample, sample_counters
from guestcheck.facts import Facts, Problem
from guestcheck.quantities import DEFAULT_SAMPLE_SECONDS
from guestcheck.roots import Roots
from guestcheck.text import escape_control

# Facts fields that are about the collection, not an area of the machine
BOOKKEEPING = ("schema", "guestcheck_version", "collected_at", "sample_seconds", "complete", "problems")
# Facts fields no collector fills: the drop reasons are sampled by guestcheck/trace/ (which writes its own trace
# instance, and collect only reads), around the counter sample, when doctor --drops asks (`during_sample`)
FILLED_AROUND = ("drops",)
_COLLECTORS: List[Tuple[str, ModuleType]] = []


def collectors() -> List[Tuple[str, ModuleType]]:
    """(area, module) of every collector in guestcheck/collect/, in the order of Facts' fields; found once."""
    if not _COLLECTORS:
        here = os.path.dirname(os.path.abspath(__file__))
        found: Dict[str, ModuleType] = {}
        for entry in sorted(os.listdir(here)):
            name, ext = os.path.splitext(entry)
            if ext != ".py" or name.startswith("_") or name == "machine":
                continue
            module = importlib.import_module(f"{__package__}.{name}")
            area = getattr(module, "AREA", None)
            if area is None:
                continue  # a helper (fs, ethtool, counters...), not a collector
            if area in found:
                raise RuntimeError(f"two collectors fill Facts.{area}: {found[area].__name__} and {module.__name__}")
            found[area] = module
        order = [f.name for f in dataclasses.fields(Facts) if f.name not in BOOKKEEPING + FILLED_AROUND]
        unknown = sorted(set(found) - set(order))
        if unknown:
            raise RuntimeError(f"collectors for areas Facts does not have: {', '.join(unknown)}")
        _COLLECTORS.extend((area, found[area]) for area in order if area in found)
    return list(_COLLECTORS)


def _run_area(run: Run, area: str, module: ModuleType) -> None:
    try:
        setattr(run.facts, area, module.collect(run))
    except Exception as e:  # the collector's bug, or a machine it did not expect: this area only
        if os.environ.get("GUESTCHECK_DEBUG"):
            raise
        run.facts.complete = False
        run.problem(Problem("failed", area, f"{type(e).__name__}: {escape_control(e)}"))


def _sample(run: Run, sample_seconds: float, connections: Optional[bool]) -> Optional[CounterSample]:
    """Both readings of the counters; the NICs' driver counters are read in the same moments."""
    from guestcheck.collect import nic_counters
    from guestcheck.collect.ethtool import ethtool_source

    names = nic_counters.counted_nics(run.facts.nics)
    source = contextlib.nullcontext(run.ethtool) if run.ethtool is not None else ethtool_source(run.roots)
    with source as ethtool:
        return sample_counters(run.roots, sample_seconds, lambda: nic_counters.read_nics(run.roots, names, ethtool),
                               connections)


def collect_facts(
    roots: Optional[Roots] = None,
    *,
    ethtool: Optional[Any] = None,
    cpuid_reader: Optional[Callable[[], Optional[str]]] = None,
    sample_seconds: float = DEFAULT_SAMPLE_SECONDS,
    counters: Optional[CounterSample] = None,
    during_sample: Optional[ContextManager[Any]] = None,
    connections: Optional[bool] = None,
) -> Facts:
    """Everything guestcheck knows about the machine. `counters` replaces the live sampling in tests;
    `during_sample` is entered just before the first reading of the counters and left just after the second
    (doctor --drops: the drop-reason trace covers the same window as the counters). `connections`: read the TCP
    connections (facts.flows) even unsampled (guestcheck flows --sample 0); by default only over a window."""
    roots = roots or Roots.from_env()
    facts = Facts(
        guestcheck_version=__version__,
        collected_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),  # no datetime import: start-up
    )
    run = Run(roots, facts, ethtool=ethtool, cpuid_reader=cpuid_reader, counters=counters)
    areas = collectors()
    for area, module in areas:
        if not getattr(module, "SAMPLED", False):
            _run_area(run, area, module)
    if run.counters is None:
        try:
            with during_sample if during_sample is not None else contextlib.nullcontext():
                run.counters = _sample(run, sample_seconds, connections)
        except Exception as e:
            if os.environ.get("GUESTCHECK_DEBUG"):
                raise
            facts.complete = False
            run.problem(Problem("failed", "counters", f"{type(e).__name__}: {escape_control(e)}"))
            return facts  # the sampled areas have nothing to read: left at their defaults
    facts.sample_seconds = round(run.counters.seconds, 3)
    for area, module in areas:
        if getattr(module, "SAMPLED", False):
            _run_area(run, area, module)
    return facts
