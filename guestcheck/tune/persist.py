"""The persist file /etc/sysctl.d/90-guestcheck.conf: what is there now, and the text guestcheck puts there.

What is there is read without following a link and without blocking on a FIFO, as bytes: a byte that is
not UTF-8 is kept as a surrogate escape, so the journal (JSON) holds the old content exactly and rollback
writes back the same bytes. A symlink (a /dev/null mask included) is the admin's choice: apply refuses it
and rollback leaves it alone. The text written there is one assignment per line, and nothing in a profile
(its name, summary, reasons) can add a line: control characters are escaped in comments and refused in
keys and values.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

from guestcheck.atomicfile import write_atomic
from guestcheck.regularfile import NotRegularFile, TooLarge, read_regular_stat
from guestcheck.text import escape_control
from guestcheck.tune import TuneError

ABSENT, FILE, SYMLINK, MASKED, OTHER = "absent", "file", "symlink", "masked", "other"
MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PersistFile:
    path: str
    kind: str  # absent | file | symlink | masked (a symlink to /dev/null) | other (FIFO, directory, device)
    content: Optional[str] = None  # a regular file's content, bytes that are not UTF-8 as surrogate escapes
    mode: Optional[int] = None  # a regular file's permission bits
    target: Optional[str] = None  # a symlink's target

    @property
    def utf8(self) -> bool:
        return self.content is None or decode(encode(self.content), strict=True) is not None

    def refusal(self) -> Optional[str]:
        """Why apply must not write here, or None."""
        if self.kind == MASKED:
            return (f"{self.path} is masked (a symlink to /dev/null): the admin does not want it; "
                    "remove the mask to apply a profile")
        if self.kind == SYMLINK:
            return f"{self.path} is a symlink (to {self.target!r}): guestcheck does not write through links"
        if self.kind == OTHER:
            return f"{self.path} is not a regular file"
        return None


def encode(content: str) -> bytes:
    return content.encode("utf-8", "surrogateescape")


def decode(data: bytes, strict: bool = False) -> Optional[str]:
    try:
        return data.decode("utf-8", "strict" if strict else "surrogateescape")
    except UnicodeDecodeError:
        return None


def inspect(path: str) -> PersistFile:
    """What is at `path` now. Raises TuneError when it cannot be read (or is over MAX_BYTES)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return PersistFile(path, ABSENT)
    except OSError as e:
        raise TuneError(f"cannot read {path}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError as e:
            raise TuneError(f"cannot read {path}: {e.strerror}") from None
        masked = os.path.realpath(path) == os.devnull
        return PersistFile(path, MASKED if masked else SYMLINK, target=target)
    if not stat.S_ISREG(st.st_mode):
        return PersistFile(path, OTHER)
    try:
        data, st = read_regular_stat(path, MAX_BYTES, nofollow=True)
    except NotRegularFile:  # replaced by a FIFO or a directory since the lstat
        return PersistFile(path, OTHER)
    except TooLarge:
        raise TuneError(f"{path} is larger than {MAX_BYTES // 1024} KiB: not guestcheck's file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:  # replaced by a link since the lstat
            return inspect(path)
        raise TuneError(f"cannot read {path}: {e.strerror}") from None
    return PersistFile(path, FILE, decode(data), stat.S_IMODE(st.st_mode) & 0o777)


def render(profile_name: str, summary: str, entries: Iterable[Tuple[str, str, str]]) -> str:
    """The file's text: a header, then `# reason:` and `key = value` for each (key, value, reason).
    Raises TuneError for a key or value that would not stay on its own line."""
    lines = [f"# Written by `guestcheck tune apply {escape_control(profile_name)}`; "
             "`guestcheck tune rollback` removes it.",
             f"# {escape_control(profile_name)}: {escape_control(summary)}".rstrip(),
             "# Only keys that differ from this kernel's own values are listed.", ""]
    for key, value, reason in entries:
        for what in (key, value):
            if escape_control(what) != what or what != what.strip() or not what or "=" in key:
                raise TuneError(f"refusing to persist {key!r} = {value!r}: not a one-line sysctl assignment")
        if reason:
            lines.append(f"# reason: {escape_control(reason)}")
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


# --- writing: the tuner's files (the persist file, .link files, udev rules) ---------------------------------

PERSIST_MODE = 0o644


def os_error(e: OSError) -> str:
    return e.strerror or errno.errorcode.get(e.errno or 0, str(e))


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    _fsync_dir(os.path.dirname(path) or ".")


def persist_holds(now: PersistFile, content: Optional[str], mode: Optional[int]) -> bool:
    """Whether the file is already `content` (None: absent) with `mode` (None: any mode)."""
    if content is None:
        return now.kind == ABSENT
    return now.kind == FILE and now.content == content and (mode is None or now.mode == mode)


def put_persist(now: PersistFile, content: Optional[str], mode: Optional[int]) -> None:
    """Make the file (a regular file or absent, never a link: callers check) hold `content`, its bytes exactly,
    with `mode` (None: 0644), or remove it when `content` is None."""
    if persist_holds(now, content, mode):
        return
    if content is None:
        remove(now.path)
    else:
        write_atomic(now.path, encode(content), mode=PERSIST_MODE if mode is None else mode)
