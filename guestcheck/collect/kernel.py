"""What the running kernel is and has: which network namespace this is, which modules it can load.

Shared by the collectors (the ledger says whose counters it read, and whether fq_codel is there to suggest) and
the tuner (a key that is the whole kernel's, a congestion control or qdisc a profile names).
"""

from __future__ import annotations

import os
from typing import Optional

from guestcheck.collect.fs import cat, link_name, listdir
from guestcheck.roots import Roots


def netns_id(roots: Roots) -> str:
    """This process's network namespace as the kernel names it ("net:[4026531840]"), or "" where unreadable."""
    return link_name(os.path.join(roots.proc, "self/ns/net")) or ""


def in_initial_netns(roots: Roots) -> Optional[bool]:
    """True in the host's own network namespace, False in another, None when it cannot be told."""
    try:
        ours = os.stat(os.path.join(roots.proc, "self/ns/net"))
        init = os.stat(os.path.join(roots.proc, "1/ns/net"))
        return (ours.st_dev, ours.st_ino) == (init.st_dev, init.st_ino)
    except OSError:  # pid 1's namespace can be closed to us (ptrace rules), or this is a fake tree
        pass
    # net.core.netdev_max_backlog is registered in the initial namespace only, somaxconn in every one
    core = os.path.join(roots.proc, "sys/net/core")
    if os.path.exists(os.path.join(core, "netdev_max_backlog")):
        return True
    if os.path.exists(os.path.join(core, "somaxconn")):
        return False
    return None


def _modules_dir(roots: Roots) -> str:
    """Kernel modules belong to the same machine as /proc (the real one unless a whole fake tree is used)."""
    if roots.proc == "/proc":
        return "/lib/modules"
    return os.path.join(os.path.dirname(roots.proc.rstrip("/")), "lib/modules")


def kernel_has_module(roots: Roots, module: str) -> bool:
    """Loaded, built in, or installed for the running kernel (loaded on first use)."""
    if os.path.isdir(os.path.join(roots.sys, "module", module)):
        return True
    release = cat(os.path.join(roots.proc, "sys/kernel/osrelease")) or ""
    moddir = os.path.join(_modules_dir(roots), release)
    builtin = cat(os.path.join(moddir, "modules.builtin")) or ""
    if any(os.path.basename(line).split(".")[0] == module for line in builtin.splitlines()):
        return True
    sub = "ipv4" if module.startswith("tcp_") else "sched"
    return any(name.split(".")[0] == module for name in listdir(os.path.join(moddir, "kernel/net", sub)))
