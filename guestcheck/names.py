"""The one place that says which names are safe: interface names (the kernel's rule, and the stricter one for a
name that becomes part of a file name) and profile names. Every module that checks a name asks here.
"""

from __future__ import annotations

import re

IFNAMSIZ = 16  # the kernel's limit, the final NUL included
# A name that goes into a file name or a udev rule (50-guestcheck-IFACE.link): the kernel's rule, and only these
# characters, so nothing in it is special to a shell, a glob, systemd or udev.
FILE_SAFE_IFNAME = re.compile(r"[A-Za-z0-9_.@+-]{1,15}")
# A guestcheck profile (`guestcheck tune list`): a name, never a path; letters, digits, '.', '_', '-', not starting
# with a dot. fullmatch: "$" would let a trailing newline in.
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A profile named in guestcheck.conf: a word that cannot be a path; looser than PROFILE_NAME on purpose (first
# boot takes it, and the tuner says whether such a profile exists and is valid, as `tune apply` would).
CONFIGURED_PROFILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
# A name another agent gave (a TuneD profile, a netplan id or set-name) that we record in the facts
FOREIGN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


def valid_ifname(name: object) -> bool:
    """The kernel's dev_valid_name() (net/core/dev.c): 1-15 bytes, not "." or "..", no "/", ":" or whitespace."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        return False
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return size < IFNAMSIZ and not any(c in "/:" or c.isspace() or ord(c) < 32 or ord(c) == 127 for c in name)


def file_safe_ifname(name: object) -> bool:
    """An interface name the kernel accepts that may also be part of a file name or a udev rule."""
    return isinstance(name, str) and bool(FILE_SAFE_IFNAME.fullmatch(name)) and valid_ifname(name)


def valid_profile_name(name: object) -> bool:
    """A profile name is a name, never a path: letters, digits, '.', '_', '-', not starting with a dot."""
    return isinstance(name, str) and bool(PROFILE_NAME.fullmatch(name))


def configured_profile_name(name: object) -> bool:
    """A `profile =` in guestcheck.conf that is a word, never a path."""
    return isinstance(name, str) and bool(CONFIGURED_PROFILE.fullmatch(name))


def foreign_name(name: object) -> bool:
    """A name from another agent's file that is safe to record and show (no path, no control character)."""
    return isinstance(name, str) and bool(FOREIGN_NAME.fullmatch(name))
