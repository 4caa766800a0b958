"""The machine itself: kernel, OS, host name, whether we run as root, how many CPUs."""

from __future__ import annotations

import os
import socket
from typing import List, Optional

from guestcheck.collect.area import Run
from guestcheck.collect.fs import cat
from guestcheck.collect.osrelease import os_info
from guestcheck.cpus import cpu_list
from guestcheck.facts import Host, Problem
from guestcheck.roots import Roots

AREA = "host"


def collect_host(roots: Roots, problems: Optional[List[Problem]] = None) -> Host:
    """The machine itself; what could not be read is added to `problems` when given."""
    vcpus = len(cpu_list(cat(os.path.join(roots.sys, "devices/system/cpu/online")))) or os.cpu_count() or 1
    system = os_info(roots)
    if system.problem and problems is not None:
        problems.append(Problem.note(system.problem))
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


def collect(run: Run) -> Host:
    return collect_host(run.roots, run.facts.problems)
