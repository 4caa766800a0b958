"""Write a file so that readers see the old content or the new, never a torn one.

node_exporter may scrape a textfile while it is being written and a power cut may hit
first boot at any moment: a temp file in the same directory, fsync, then rename.

`write_output` is the one way to write an output whose path comes from outside (`-o`, `--save`, the
textfile directory, the Ansible fact, first boot's report): a rename must never replace `/dev/null`, a FIFO
or whatever a symlink points at, so only a regular file (or a missing path) is replaced atomically.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from typing import Union

# what an output keeps of an existing file's mode: never setuid, setgid, sticky or world-writable
KEPT_MODE_BITS = 0o7777 & ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH)


def write_atomic(path: str, data: Union[str, bytes], mode: int = 0o644, *, make_parents: bool = True) -> None:
    """Replace `path` with `data`, whatever `path` is now (a symlink itself is replaced). Raises OSError.

    For the program's own files; an output whose path comes from outside goes through `write_output`.
    The program's own directories are made when missing (`make_parents`); a path the user named (`-o`,
    `--save`) is not: a typo must not grow a directory tree, it gets an error.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if make_parents:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    elif not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"directory {directory} does not exist", path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    # The temp name must not end like the target: node_exporter reads only *.prom files.
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the data is already safe
    finally:
        os.close(dir_fd)


def write_output(path: str, data: Union[str, bytes], mode: int = 0o644, *, keep_mode: bool = True,
                 make_parents: bool = False) -> None:
    """Write an output where `path` says, as the shell's `>` would for a stream, atomically for a file.

    - a character device (`/dev/null`, a terminal) is opened without O_CREAT and written; never renamed over;
    - a FIFO is opened O_NONBLOCK: with a reader it is written, without one it is an error, never a hang;
    - a regular file, or a missing path, is replaced atomically (`write_atomic`); with `keep_mode` an existing
      file keeps its mode without setuid, setgid, sticky or world-write bits, and a new one gets `mode`;
    - a symlink is followed only to a character device or a FIFO (`/dev/stdout`); a symlink to anything else
      (a file, nothing) is refused, so a planted link never redirects a root-owned write;
    - a socket, a directory or a block device is refused.

    Raises OSError whose strerror reads after "cannot write PATH: ".
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        try:
            target = os.stat(path)
        except OSError:
            target = None
        if target is None or stat.S_ISREG(target.st_mode):
            raise OSError(errno.ELOOP, "it is a symbolic link, not followed to a file (name the file itself, or "
                                       "remove the link)", path)
        st = target  # a device, a FIFO, or something refused below
    if st is None or stat.S_ISREG(st.st_mode):
        if keep_mode and st is not None:
            mode = stat.S_IMODE(st.st_mode) & KEPT_MODE_BITS
        write_atomic(path, data, mode, make_parents=make_parents)
        return
    _refuse_unwritable(st.st_mode, path)
    _write_stream(path, data.encode("utf-8") if isinstance(data, str) else data, fifo=stat.S_ISFIFO(st.st_mode))


def _refuse_unwritable(st_mode: int, path: str) -> None:
    """Only a character device or a FIFO is written in place; say what else the path is."""
    if stat.S_ISCHR(st_mode) or stat.S_ISFIFO(st_mode):
        return
    if stat.S_ISDIR(st_mode):
        raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    kind = "a socket" if stat.S_ISSOCK(st_mode) else "a block device" if stat.S_ISBLK(st_mode) else "not a file"
    raise OSError(errno.EINVAL, f"it is {kind}; only a regular file, a character device or a FIFO is written",
                  path)


def _write_stream(path: str, payload: bytes, *, fifo: bool) -> None:
    """Open a character device or FIFO as `>` would, without creating or renaming anything, and write to it.

    O_NONBLOCK on open: a FIFO without a reader fails with ENXIO at once, and a serial line does not wait for
    carrier. What was opened is checked again (the path may have changed since lstat), then made blocking so
    the whole payload is written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENXIO and fifo:
            raise OSError(errno.ENXIO, "it is a FIFO with no reader (start the reader first)", path) from None
        raise
    try:
        opened = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(opened) or stat.S_ISFIFO(opened)):  # swapped since lstat: nothing written yet
            raise OSError(errno.EAGAIN, "it changed while it was being opened; not written", path)
        os.set_blocking(fd, True)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
