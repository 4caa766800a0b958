"""tracefs: where it is mounted, mounting it where it is not, and our own trace instances in it.

Everything this package writes to the system is written here, and only this:
- a tracefs mount at /sys/kernel/tracing, only when tracefs is mounted nowhere in this mount namespace, and its
  unmount, only while the mount seen there is still the one we made (its mount id, from mountinfo);
- instances/guestcheck-PID (mkdir creates a trace instance, rmdir removes it), and in it
  events/skb/kfree_skb/enable. Never the top-level buffer (tracing_on, set_event, trace), never another
  instance. A leftover guestcheck-PID whose PID no longer runs (a run killed with SIGKILL) is removed.
Control files are written with one write(2) of one byte: tracefs takes it whole, there is no file to replace.

The mount: mount(2) and umount2(2) through ctypes on the C library, not the `mount` binary. Python 3.9-3.11 have
neither os.mount nor os.unshare (3.12 adds only unshare), and the two calls are all we need: ctypes gives the
errno itself (EPERM under lockdown or without CAP_SYS_ADMIN, ENODEV on a kernel without tracefs) where a child
process gives a message in the local language to parse, and it needs no util-linux in a minimal image and no
PATH lookup as root. The mount is made in the caller's mount namespace (`ip netns exec` gives each command its
own, so there it vanishes with the command anyway).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
from typing import List, Optional

from guestcheck.mountinfo import Mount, read_mountinfo, topmost
from guestcheck.quantities import is_digits, parse_int
from guestcheck.regularfile import read_regular
from guestcheck.roots import Roots

TRACING_DIR = "/sys/kernel/tracing"  # where the kernel (4.1+) leaves an empty directory for tracefs
INSTANCE_PREFIX = "guestcheck-"
_OURS = re.compile(r"^guestcheck-([0-9]{1,10})$")
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8


class TracefsError(OSError):
    """A tracefs operation that failed; str() is one line for the user."""


def on_machine(roots: Roots, mount_point: str) -> str:
    """A mount point from mountinfo as a path under `roots` (the same path on the real machine)."""
    return os.path.join(roots.top, mount_point.lstrip("/")) if roots.top != "/" else mount_point


def find_tracefs(mounts: List[Mount]) -> Optional[Mount]:
    """The tracefs mount to use: a whole one (root "/"), at /sys/kernel/tracing first, then
    /sys/kernel/debug/tracing, then anywhere; None when tracefs is mounted nowhere."""
    whole = [m for m in mounts if m.fstype == "tracefs" and m.root == "/"
             and topmost(mounts, m.mount_point) is m]
    for preferred in (TRACING_DIR, "/sys/kernel/debug/tracing"):
        for m in whole:
            if m.mount_point == preferred:
                return m
    return whole[0] if whole else None


def lockdown(roots: Roots, mounts: List[Mount]) -> Optional[str]:
    """The kernel lockdown level ("none", "integrity", "confidentiality") where securityfs shows it, else None.
    Confidentiality forbids tracefs (LOCKDOWN_TRACEFS); integrity does not."""
    points = [m.mount_point for m in mounts if m.fstype == "securityfs"] or ["/sys/kernel/security"]
    for point in points:
        try:
            text = read_regular(os.path.join(on_machine(roots, point), "lockdown"), 4096).decode("ascii", "replace")
        except (OSError, ValueError):
            continue
        chosen = re.search(r"\[([a-z]{1,32})\]", text)
        if chosen:
            return chosen.group(1)
    return None


class Ops:
    """The writes, one method each, so that unit tests on a fake tree can stand in for tracefs's own behaviour
    (a mkdir in instances/ that fills the directory). The real ones act on the machine."""

    def mount_tracefs(self, target: str) -> None:
        _libc_call("mount", b"tracefs", os.fsencode(target), b"tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)

    def unmount(self, target: str, lazy: bool = False) -> None:
        _libc_call("umount2", os.fsencode(target), 2 if lazy else 0)  # MNT_DETACH = 2

    def make_instance(self, path: str) -> None:
        os.mkdir(path)

    def remove_instance(self, path: str) -> None:
        os.rmdir(path)

    def write_control(self, path: str, value: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.write(fd, value)
        finally:
            os.close(fd)


def _libc_call(name: str, *args: object) -> None:
    path = ctypes.util.find_library("c") or "libc.so.6"
    libc = ctypes.CDLL(path, use_errno=True)
    func = getattr(libc, name)
    if func(*args) != 0:
        err = ctypes.get_errno()
        raise TracefsError(err, f"{name}: {os.strerror(err)}")


def pid_runs(pid: int) -> bool:
    """Whether a process with this id exists (EPERM: it does, it is someone else's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def instance_name(pid: Optional[int] = None) -> str:
    return f"{INSTANCE_PREFIX}{os.getpid() if pid is None else pid}"


def cleanup_leftovers(tracefs: str, ops: Optional[Ops] = None) -> List[str]:
    """Remove instances/guestcheck-PID whose PID no longer runs (a killed run's); never another name, never a
    live PID's. The names removed; one that cannot be removed (busy) is left and not named."""
    ops = ops or Ops()
    removed = []
    try:
        names = sorted(os.listdir(os.path.join(tracefs, "instances")))
    except OSError:
        return []
    for name in names:
        match = _OURS.match(name)
        if not match or not is_digits(match.group(1)):
            continue
        pid = parse_int(match.group(1))
        if pid == os.getpid() or pid_runs(pid):
            continue
        try:
            ops.remove_instance(os.path.join(tracefs, "instances", name))
        except OSError:
            continue
        removed.append(name)
    return removed


def describe(err: OSError, what: str) -> str:
    """One line for an errno met while using tracefs."""
    if err.errno in (errno.EPERM, errno.EACCES):
        return f"{what}: permission denied (needs root; kernel lockdown can also forbid tracefs)"
    if err.errno == errno.EROFS:
        return f"{what}: tracefs is mounted read-only"
    if err.errno == errno.ENODEV:
        return f"{what}: this kernel has no tracefs"
    return f"{what}: {os.strerror(err.errno) if err.errno else err}"


def mountinfo(roots: Roots) -> List[Mount]:
    try:
        return read_mountinfo(roots.proc)
    except (OSError, ValueError):
        return []
