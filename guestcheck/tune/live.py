"""What the running kernel says: /proc/sys values, whether they can be written, which namespace we are in.

The tuner reads the exact values it is about to replace (a failed read means no write), so this reader
lives with the tuner rather than in collect/.
"""

from __future__ import annotations

import os
import stat
from typing import Optional

from guestcheck.collect.fs import cat
from guestcheck.collect.kernel import kernel_has_module
from guestcheck.roots import Roots
from guestcheck.tune.keys import UnknownInterface, resolve
from guestcheck.tune.profile import normalise_value


class ProcSys:
    """/proc/sys of one kernel (or of a fake tree under GUESTCHECK_ROOT)."""

    def __init__(self, roots: Roots) -> None:
        self.roots = roots
        self.base = os.path.join(roots.proc, "sys")

    def path(self, key: str) -> str:
        """The key's file, proved to stay under /proc/sys (keys.BadKey otherwise): every read and write
        of the tuner goes through here."""
        return resolve(key, self.base, os.path.join(self.roots.sys, "class/net"))

    def read(self, key: str) -> Optional[str]:
        """The normalised value, or None when the key does not exist here."""
        try:
            path = self.path(key)
        except UnknownInterface:
            return None
        text = cat(path)
        return None if text is None else normalise_value(text)

    def writable(self, key: str) -> bool:
        """procfs enforces the mode even for root: 0444 means read-only here (a global key in a netns)."""
        try:
            return bool(os.stat(self.path(key)).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        except OSError:
            return False

    def mounted_read_only(self) -> bool:
        """A container's /proc/sys is often a read-only mount: nothing can be changed there."""
        try:
            return bool(os.statvfs(self.base).f_flag & os.ST_RDONLY)
        except OSError:
            return False


def choice_missing(roots: Roots, procsys: ProcSys, key: str, value: str) -> Optional[str]:
    """For keys that name a kernel algorithm: why this kernel cannot take `value`, or None if it can."""
    if key == "net.ipv4.tcp_congestion_control":
        offered = (procsys.read("net.ipv4.tcp_available_congestion_control") or "").split()
        if value in offered or kernel_has_module(roots, f"tcp_{value}"):
            return None
        return f"this kernel has no {value} congestion control (available: {' '.join(offered) or 'unknown'})"
    if key == "net.core.default_qdisc":
        if value in ("pfifo_fast", "pfifo", "bfifo") or kernel_has_module(roots, f"sch_{value}"):
            return None
        return f"this kernel has no {value} qdisc"
    return None


def boot_id(procsys: ProcSys) -> Optional[str]:
    """This boot's id: NIC settings changed live only are gone once it differs from the journal's."""
    return procsys.read("kernel.random.boot_id")
