"""Write a file so that readers see the old content or the new, never a torn one.

node_exporter may scrape a textfile while it is being written and a power cut may hit
first boot at any moment: a temp file in the same directory, fsync, then rename.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from typing import Union


def write_atomic(path: str, data: Union[str, bytes], mode: int = 0o644, *, make_parents: bool = True,
                 keep_mode: bool = False) -> None:
    """Replace `path` with `data`. Raises OSError.

    The program's own directories are made when missing (`make_parents`); a path the user named (`-o`,
    `--save`) is not: a typo must not grow a directory tree, it gets an error. With `keep_mode`, an existing
    file keeps its permissions (the user chose them) and only a new one gets `mode`.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if make_parents:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    elif not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"directory {directory} does not exist", path)
    if keep_mode:
        with contextlib.suppress(FileNotFoundError):
            existing = os.stat(path)
            if stat.S_ISREG(existing.st_mode):
                mode = stat.S_IMODE(existing.st_mode)
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
