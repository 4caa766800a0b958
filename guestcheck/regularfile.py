"""Reading a file that someone else may have put there: a regular file only, bounded, never waited on.

A FIFO in /etc/systemd/network or a facts file that is really /dev/zero must not hang guestcheck or fill its
memory: the open is non-blocking, the type is checked on the open descriptor (no race with a rename), the read
stops one byte past the limit, and with `nofollow` a symlink is refused rather than followed.

This is the one reader for such files: the collectors' fs.read (sysfs, procfs, /etc, /run), the tuner's journal,
profiles and persist file, udev's database, ethtool replays, first boot's settings and stamp, facts and selftest
documents all come through `read_regular`.
"""

from __future__ import annotations

import os
import stat
from typing import Tuple

CHUNK = 1 << 16  # sysfs answers a page per read; a small file costs one small buffer, not the limit


class NotRegularFile(ValueError):
    """A FIFO, a device, a directory or a socket where a file was expected."""


class TooLarge(ValueError):
    """More bytes than the caller's limit."""


def read_regular(path: str, limit: int, *, nofollow: bool = False, truncate: bool = False) -> bytes:
    """The file's bytes. OSError when it cannot be opened (ELOOP: a symlink, with `nofollow`) or read;
    NotRegularFile "not a regular file" (a FIFO, a device, a directory) or TooLarge "larger than N bytes" (both
    ValueErrors, one short line each, for the caller's message). With `truncate`, a longer file gives its
    first `limit` bytes instead."""
    return read_regular_stat(path, limit, nofollow=nofollow, truncate=truncate)[0]


def read_regular_stat(path: str, limit: int, *, nofollow: bool = False,
                      truncate: bool = False) -> Tuple[bytes, os.stat_result]:
    """read_regular, with the fstat of the descriptor that was read: the mode and owner of the very file whose
    bytes these are (a later stat could meet another file, renamed in meanwhile)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile("not a regular file")
        wanted = limit if truncate else limit + 1
        chunks, size = [], 0
        while size < wanted:
            chunk = os.read(fd, min(CHUNK, wanted - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise TooLarge(f"larger than {limit} bytes")
    return b"".join(chunks), st
