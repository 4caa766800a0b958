"""Which sysctl.d file wins at boot, in systemd-sysctl's order (man sysctl.d).

- Files ending in .conf from /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d
  (and /lib/sysctl.d on split-/usr systems) are sorted by file name across all directories.
- A file in /etc hides a same-named one in /run and the lib dirs; /run hides the lib dirs.
  A symlink to /dev/null masks the name altogether.
- Files are applied in that order and a later assignment wins (also within one file).
- A glob (net.ipv4.conf.*.rp_filter) skips keys that are set explicitly anywhere, as ours are.
- Debian's procps links /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf; when the link is missing,
  /etc/sysctl.conf is still read last by `sysctl --system`, so it is counted as 99-sysctl.conf.

So a profile persisted as 90-guestcheck.conf loses to any 99-*.conf that sets the same key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from guestcheck.regularfile import read_regular
from guestcheck.roots import Roots
from guestcheck.sysctlnames import normalise_key
from guestcheck.tune import confdirs
from guestcheck.tune.journal import PERSIST_NAME
from guestcheck.tune.profile import normalise_value

SYSCTL_CONF_NAME = "99-sysctl.conf"


@dataclass(frozen=True)
class Assignment:
    key: str  # may be a glob (net.ipv4.conf.*.rp_filter)
    value: str
    path: str
    line: int
    name: str  # the file name that decides the order

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Conflict:
    key: str
    ours: str
    others: List[Assignment] = field(default_factory=list)
    winner: Optional[Assignment] = None  # None: ours wins

    @property
    def we_win(self) -> bool:
        return self.winner is None


def search_dirs(roots: Roots) -> List[str]:
    """In precedence order: a file here hides same-named files in the directories after it."""
    return confdirs.search_dirs(roots, "sysctl.d")


def boot_files(roots: Roots) -> List[tuple[str, str]]:
    """(name, path) of every file systemd-sysctl reads at boot, in the order it applies them."""
    chosen = confdirs.first_by_name(search_dirs(roots), ".conf")
    sysctl_conf = os.path.join(roots.etc, "sysctl.conf")
    if SYSCTL_CONF_NAME not in chosen and os.path.isfile(sysctl_conf):
        chosen[SYSCTL_CONF_NAME] = sysctl_conf
    masked = {n for n, p in chosen.items() if os.path.islink(p) and os.path.realpath(p) == "/dev/null"}
    return [(n, chosen[n]) for n in sorted(chosen) if n not in masked]


def parse_sysctl_d(text: str) -> List[tuple[str, str, int]]:
    """(key, value, line) for every assignment; comments, blanks and broken lines are skipped as systemd does."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().lstrip("-")
        if key:
            out.append((normalise_key(key), normalise_value(value), number))
    return out


MAX_SYSCTL_FILE = 1 << 20  # systemd-sysctl's files are a few KiB


def boot_assignments(roots: Roots) -> List[Assignment]:
    out = []
    for name, path in boot_files(roots):
        try:  # a FIFO or a huge file in a sysctl.d directory must not hang or flood tune
            text = read_regular(path, MAX_SYSCTL_FILE).decode("utf-8", "replace")
        except (OSError, ValueError):
            continue
        out.extend(Assignment(k, v, path, n, name) for k, v, n in parse_sysctl_d(text))
    return out


def find_conflicts(ours: Dict[str, str], roots: Roots, our_name: str = PERSIST_NAME) -> List[Conflict]:
    """Every other file that sets one of our keys, and which assignment is in force after a reboot."""
    assignments = boot_assignments(roots)
    out = []
    for key, value in ours.items():
        # a glob never applies to a key that some file sets explicitly, and ours does: exact matches only
        others = [a for a in assignments if a.name != our_name and a.key == key]
        if not others:
            continue
        later = [a for a in others if a.name > our_name]
        out.append(Conflict(key, value, others, later[-1] if later else None))
    return out


def describe(conflict: Conflict) -> List[str]:
    """Lines for the human report."""
    lines = []
    for a in conflict.others:
        same = " (same value)" if a.value == conflict.ours else ""
        lines.append(f"{conflict.key}: also set in {a.where} = {a.value}{same}")
    if conflict.we_win:
        lines.append(f"{conflict.key}: at boot {PERSIST_NAME} wins (applied after those)")
    else:
        w = conflict.winner
        assert w is not None
        verdict = "harmless, same value" if w.value == conflict.ours else f"the profile's {conflict.ours} is LOST"
        lines.append(f"{conflict.key}: at boot {w.where} wins with {w.value}: {verdict} after a reboot")
    return lines
