"""Tiny readers for sysfs, procfs, /etc and /run that tell "missing" from "not allowed" without raising.

Every read goes through regularfile.read_regular: bounded, non-blocking, regular files only."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Optional

from guestcheck.quantities import maybe_int
from guestcheck.regularfile import read_regular

# errnos that mean "this source says nothing": the file is absent, the device went away
# between listing and reading, or the attribute has no value right now (speed of a down link
# reads EINVAL, some virtual devices answer EOPNOTSUPP).
_SAYS_NOTHING = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.ENODEV,
    errno.ENXIO,
    errno.EINVAL,
    errno.EOPNOTSUPP,
    errno.ESRCH,
    errno.EIO,
}
MAX_READ = 64 << 20  # far above any sysfs, procfs or config file doctor reads; a larger one is refused, not held


@dataclass(frozen=True)
class Read:
    """A read that may have failed; `problem` is "missing", "denied" or an errno name."""

    value: Optional[str]
    problem: Optional[str] = None


def read(path: str, limit: int = MAX_READ) -> Read:
    """The whole file as text, through the one bounded, non-blocking reader: a FIFO, a device or a symlink to
    /dev/zero put where a config file belongs is "not a regular file", never a hang or an endless read."""
    try:
        data = read_regular(path, limit)
    except PermissionError:
        return Read(None, "denied")
    except OSError as e:
        return _failed(e)
    except ValueError as e:  # not a regular file, or larger than the limit
        return Read(None, str(e))
    return Read(data.decode("utf-8", "replace"))


def _failed(e: OSError) -> Read:
    if e.errno in _SAYS_NOTHING:
        return Read(None, "missing")
    return Read(None, errno.errorcode.get(e.errno or 0, str(e)))


def cat(path: str) -> Optional[str]:
    """The stripped content of a small file, or None when it cannot be read for any reason."""
    value = read(path).value
    return None if value is None else value.strip()


def cat_int(path: str, base: int = 10) -> Optional[int]:
    """A sysfs or procfs number ("1500", "-1", "0x1003" with base 16), or None when unreadable or not one."""
    return maybe_int(cat(path), signed=True, base=base)


def listdir(path: str) -> list[str]:
    """Sorted entries, or [] when the directory is missing or unreadable."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def link_name(path: str) -> Optional[str]:
    """The last component of a symlink's target (a driver or a bus name), or None."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def exists(path: str) -> bool:
    return os.path.lexists(path)


def escape_bytes(raw: bytes) -> str:
    """Binary firmware strings as text, byte for byte: printable ASCII as is, anything else (and a
    backslash) as \\xNN, so a signature with a trailing space or a NUL inside survives JSON unchanged."""
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)
