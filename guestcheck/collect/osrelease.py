"""The operating system, from os-release, through the distro library (which parses it as the shell would:
quotes, escapes, comments), so the fixes can name this distribution's package manager and service tools."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List

from guestcheck.roots import Roots


@dataclass
class OsInfo:
    pretty_name: str = ""  # "Debian GNU/Linux 12 (bookworm)"
    id: str = ""  # "debian", "ubuntu", "fedora", "rhel", "opensuse-leap", "alpine", ...
    like: List[str] = field(default_factory=list)  # ID_LIKE: the families it follows ("rhel", "fedora")
    version: str = ""  # "12"
    problem: str = ""  # why the OS is unknown, when it is for a reason worth saying


def os_info(roots: Roots) -> OsInfo:
    """os-release of the machine at `roots` (`/etc/os-release`, else `/usr/lib/os-release`). Only files are
    read: distro runs no lsb_release or uname when it is given a root directory."""
    try:
        import distro  # lazily: ~20-30 ms of imports that doctor's other callers need not pay
    except ImportError:  # the OS name only words some fixes: doctor still runs, and says what it lacks
        return OsInfo(problem="the Python library 'distro' is missing (install python3-distro): the OS is unknown "
                              "and fixes use the Debian commands")

    candidates = [os.path.join(roots.etc, "os-release"), os.path.join(roots.usr_lib, "os-release")]
    chosen = next((p for p in candidates if os.path.isfile(p)), candidates[0])
    try:
        d = distro.LinuxDistribution(os_release_file=chosen, root_dir=roots.top)
        pretty = d.os_release_attr("pretty_name") or d.name(pretty=True)
        return OsInfo(pretty, d.id(), d.like().split(), d.version())
    except (OSError, UnicodeError, ValueError):
        return OsInfo()  # unreadable says as much as absent: the OS is unknown, and fixes use the generic form
