"""Sysctl key names: the one check every key passes before it becomes a path under /proc/sys.

Keys come from profiles (admin-written) and from the journal (a file anyone with root, or a bug, may have
damaged). A dotted key's component may hold "/" standing for a literal dot (`net.ipv4.conf.eth0/100.rp_filter`
is /proc/sys/net/ipv4/conf/eth0.100/rp_filter), so `net.//.vm` would be `net/../vm`: every key is judged
after that translation, component by component, and its resolved path must stay under /proc/sys.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Sequence

from guestcheck.names import valid_ifname
from guestcheck.tune import TuneError

MAX_KEY_LENGTH = 512

_KERNEL_ALPHABET = re.compile(r"[A-Za-z0-9_+@:-]+")
# /proc/sys directories whose next component is an interface name (or "all" / "default")
_IFNAME_PARENTS = (("net", "ipv4", "conf"), ("net", "ipv6", "conf"), ("net", "ipv4", "neigh"),
                   ("net", "ipv6", "neigh"), ("net", "mpls", "conf"))


class BadKey(TuneError):
    """A key that is not a sysctl name (or would leave /proc/sys): never read, never written."""


class UnknownInterface(BadKey):
    """A key naming an interface this machine does not have, by a name only an interface may have."""


def components(key: str) -> List[str]:
    """The path components under /proc/sys, after the "/" -> "." translation."""
    return [part.replace("/", ".") for part in key.split(".")]


def _ifname_index(parts: Sequence[str]) -> Optional[int]:
    for parent in _IFNAME_PARENTS:
        if len(parts) > len(parent) and tuple(parts[:len(parent)]) == parent:
            return len(parent)
    return None


def check_syntax(key: object) -> List[str]:
    """The key's components, or BadKey saying why it is not a sysctl name. Needs no machine."""
    if not isinstance(key, str) or not key:
        raise BadKey(f"{_show(key)} is not a sysctl name")
    if len(key) > MAX_KEY_LENGTH:
        raise BadKey(f"{_show(key)} is not a sysctl name (longer than {MAX_KEY_LENGTH} characters)")
    parts = components(key)
    where = _ifname_index(parts)
    for i, part in enumerate(parts):
        if part in ("", ".", ".."):
            raise BadKey(f"{_show(key)} is not a sysctl name (an empty, '.' or '..' component)")
        if _KERNEL_ALPHABET.fullmatch(part):
            continue
        if i == where and valid_ifname(part):
            continue  # checked against /sys/class/net when a machine is at hand
        raise BadKey(f"{_show(key)} is not a sysctl name ({_show(part)} has characters outside "
                     "letters, digits and _ - + @ :)")
    return parts


def resolve(key: object, proc_sys: str, class_net: str) -> str:
    """The file under `proc_sys` for `key`: the syntax checked, an unusual interface name checked against
    `class_net` (/sys/class/net of the same machine), and the resolved path proved to stay under proc_sys."""
    parts = check_syntax(key)
    where = _ifname_index(parts)
    if where is not None and not _KERNEL_ALPHABET.fullmatch(parts[where]):
        try:
            present = parts[where] in os.listdir(class_net)
        except OSError:
            present = False
        if not present:
            raise UnknownInterface(f"{_show(key)}: no interface {_show(parts[where])} here")
    path = os.path.join(proc_sys, *parts)
    base = os.path.realpath(proc_sys)
    if not os.path.realpath(path).startswith(base.rstrip("/") + "/"):
        raise BadKey(f"{_show(key)} resolves outside {proc_sys}")
    return path


def _show(text: object) -> str:
    """A name as it can be printed on one line: repr escapes control characters; long ones are cut."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."
