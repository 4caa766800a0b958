"""The one parser of /proc/PID/mountinfo: which filesystems are mounted where, in this mount namespace.

mountinfo (proc(5)) rather than /proc/mounts because it gives each mount's id (a mount stacked later on the same
directory has another id, so "unmount only what we mounted" can be checked) and the root of a bind mount. Fields
are space-separated with space, tab, newline and backslash written as octal escapes (\\040); the optional fields
end at a lone "-". A line that does not have that shape is skipped, not guessed at: the file is the kernel's, but
the mount points in it are names anyone who can mount chose.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import List, Optional

from guestcheck.quantities import maybe_int
from guestcheck.regularfile import read_regular

MOUNTINFO_LIMIT = 4 << 20  # a machine with thousands of mounts (containers) stays well under 4 MiB
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo."""

    mount_id: int
    parent_id: int
    root: str  # the directory of the filesystem mounted here ("/" unless a bind mount of a subdirectory)
    mount_point: str  # in the reading process's root
    options: str  # per-mount options: "rw,nosuid,nodev"
    fstype: str
    source: str

    @property
    def read_only(self) -> bool:
        return "ro" in self.options.split(",")


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> List[Mount]:
    """The mounts, in the file's order (a later mount on the same point hides an earlier one)."""
    out: List[Mount] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            dash = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < dash + 3:
            continue
        mount_id, parent_id = maybe_int(fields[0]), maybe_int(fields[1])
        if mount_id is None or parent_id is None:
            continue
        out.append(Mount(mount_id, parent_id, _unescape(fields[3]), _unescape(fields[4]), fields[5],
                         _unescape(fields[dash + 1]), _unescape(fields[dash + 2])))
    return out


def read_mountinfo(proc: str = "/proc") -> List[Mount]:
    """This process's mounts (PROC/self/mountinfo); OSError when it cannot be read."""
    data = read_regular(os.path.join(proc, "self/mountinfo"), MOUNTINFO_LIMIT, truncate=True)
    return parse_mountinfo(data.decode("utf-8", "surrogateescape"))


def topmost(mounts: List[Mount], mount_point: str) -> Optional[Mount]:
    """The mount seen at `mount_point`: the last one mounted there."""
    found = [m for m in mounts if m.mount_point == mount_point]
    return found[-1] if found else None
