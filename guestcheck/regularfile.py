"""Reading a file that someone else may have put there: a regular file only, bounded, never waited on.

A FIFO in /etc/systemd/network or a facts file that is really /dev/zero must not hang guestcheck or fill its
memory: the open is non-blocking, the type is checked on the open descriptor (no race with a rename), the read
stops one byte past the limit, and with `nofollow` a symlink is refused rather than followed.
"""

from __future__ import annotations

import os
import stat


def read_regular(path: str, limit: int, *, nofollow: bool = False) -> bytes:
    """The file's bytes. OSError when it cannot be opened (ELOOP: a symlink, with `nofollow`); ValueError
    "not a regular file" or "larger than N bytes" (one short line each, for the caller's message)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise ValueError(f"larger than {limit} bytes")
    return b"".join(chunks)
