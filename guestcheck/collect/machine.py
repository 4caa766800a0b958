"""Gather all facts about this machine, one area at a time, each isolated from the others' failures."""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from typing import Any, Callable, List, Optional

from guestcheck import __version__
from guestcheck.collect import bridges as bridges_collector
from guestcheck.collect import conntrack as conntrack_collector
from guestcheck.collect import nic_counters as nic_counters_collector
from guestcheck.collect import path as path_collector
from guestcheck.collect import softirq as softirq_collector
from guestcheck.collect import tunnels as tunnels_collector
from guestcheck.collect import virt as virt_collector
from guestcheck.collect.agents import collect_agents
from guestcheck.collect.counters import DEFAULT_SAMPLE_SECONDS, CounterSample, sample_counters
from guestcheck.collect.ethtool import REPLAY_DIR, Ethtool, EthtoolReplay
from guestcheck.collect.fs import cat
from guestcheck.collect.memory import collect_memory
from guestcheck.collect.nics import EthtoolSource, collect_nics
from guestcheck.collect.osrelease import os_info
from guestcheck.collect.pci import collect_pci_network
from guestcheck.collect.steal import measure_steal
from guestcheck.cpus import cpu_list
from guestcheck.facts import Facts, Host, Problem, Virt
from guestcheck.roots import Roots


def collect_host(roots: Roots, problems: Optional[List[Problem]] = None) -> Host:
    """The machine itself; what could not be read is added to `problems` when given."""
    vcpus = len(cpu_list(cat(os.path.join(roots.sys, "devices/system/cpu/online")))) or os.cpu_count() or 1
    system = os_info(roots)
    if system.problem and problems is not None:
        problems.append(Problem("note", "host", system.problem))
    return Host(
        kernel=cat(os.path.join(roots.proc, "sys/kernel/osrelease")) or "",
        os=system.pretty_name,
        os_id=system.id,
        os_like=system.like,
        os_version=system.version,
        hostname=cat(os.path.join(roots.proc, "sys/kernel/hostname")) or socket.gethostname(),
        is_root=os.geteuid() == 0,
        vcpus=vcpus,
    )


def ethtool_source(roots: Roots) -> Any:
    """The ioctls when sysfs is the real one; when it is a fake tree (GUESTCHECK_ROOT, tests) the answers recorded
    next to it, ROOT/ethtool/IFACE.json, so an offline replay never asks the live kernel."""
    if os.path.normpath(roots.sys) != "/sys":
        return EthtoolReplay(os.path.join(os.path.dirname(os.path.normpath(roots.sys)), REPLAY_DIR))
    return Ethtool()


def collect_facts(
    roots: Optional[Roots] = None,
    *,
    ethtool: Optional[EthtoolSource] = None,
    cpuid_reader: Optional[Callable[[], Optional[str]]] = None,
    sample_seconds: float = DEFAULT_SAMPLE_SECONDS,
    counters: Optional[CounterSample] = None,
) -> Facts:
    """Everything guestcheck knows about the machine. `counters` replaces the live sampling in tests."""
    roots = roots or Roots.from_env()
    facts = Facts(
        guestcheck_version=__version__,
        collected_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    facts.host = collect_host(roots, facts.problems)
    if cpuid_reader is None:
        cpuid_reader = virt_collector.cpuid.hypervisor_vendor if roots.sys == "/sys" else (lambda: None)
    # evidence only: the verdict is the judging step's (guestcheck.judge.judge), at every run
    facts.virt = Virt(evidence=virt_collector.collect_evidence(roots, cpuid_reader))
    # a denied source is named in the problems; whether it leaves a verdict open is the judge's call
    # (virt.undecided), so `complete` stays about whole areas
    facts.problems.extend(virt_collector.problems(facts.virt.evidence, facts.host.is_root))
    if not os.path.isdir(os.path.join(roots.sys, "class/net")):
        facts.complete = False
        facts.problems.append(Problem("note", "nics", f"{roots.sys}/class/net is not readable: is sysfs mounted?"))
    if ethtool is None:
        with ethtool_source(roots) as source:
            # the driver's counters are read by the sample below (both ends of the window), not twice
            facts.nics = collect_nics(roots, source, driver_stats=counters is not None)
    else:
        facts.nics = collect_nics(roots, ethtool, driver_stats=counters is not None)
    facts.memory = collect_memory(roots)
    facts.path = path_collector.collect_path(roots, live=roots.proc == "/proc")
    facts.bridges = bridges_collector.collect_bridges(roots)
    facts.vlans = bridges_collector.collect_vlans(roots)
    facts.tunnels = tunnels_collector.collect_tunnels(roots)
    facts.pci_network = collect_pci_network(roots)
    facts.agents = collect_agents(roots)
    if counters is None:
        with (ethtool_source(roots) if ethtool is None else contextlib.nullcontext(ethtool)) as source:
            names = nic_counters_collector.counted_nics(facts.nics)
            counters = sample_counters(roots, sample_seconds,
                                       lambda: nic_counters_collector.read_nics(roots, names, source))
    facts.sample_seconds = round(counters.seconds, 3)
    # Areas that need the counter sample are collected below, each from `counters`.
    facts.cpu_steal = measure_steal(counters)
    facts.softirq = softirq_collector.collect_softirq(roots, facts.nics, counters)
    facts.conntrack = conntrack_collector.collect_conntrack(roots, counters)
    facts.nic_counters = nic_counters_collector.collect_nic_counters(facts.nics, counters)
    return facts
