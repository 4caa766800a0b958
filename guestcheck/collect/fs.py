"""Tiny readers for sysfs and procfs that tell "missing" from "not allowed" without raising."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Optional

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


@dataclass(frozen=True)
class Read:
    """A read that may have failed; `problem` is "missing", "denied" or an errno name."""

    value: Optional[str]
    problem: Optional[str] = None


def read(path: str) -> Read:
    """The whole file as text. os.open/os.read rather than open(): doctor reads thousands of these small
    files (15 per interface), and the buffered text layer costs more than the read itself."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (PermissionError, IsADirectoryError) as e:
        return Read(None, "denied" if isinstance(e, PermissionError) else "directory")
    except OSError as e:
        return _failed(e)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except IsADirectoryError:
        return Read(None, "directory")
    except PermissionError:
        return Read(None, "denied")
    except OSError as e:
        return _failed(e)
    finally:
        os.close(fd)
    return Read(b"".join(chunks).decode("utf-8", "replace"))


def _failed(e: OSError) -> Read:
    if e.errno in _SAYS_NOTHING:
        return Read(None, "missing")
    return Read(None, errno.errorcode.get(e.errno or 0, str(e)))


def cat(path: str) -> Optional[str]:
    """The stripped content of a small file, or None when it cannot be read for any reason."""
    value = read(path).value
    return None if value is None else value.strip()


def cat_int(path: str, base: int = 10) -> Optional[int]:
    text = cat(path)
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def read_bytes(path: str, size: int = -1) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return None


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
