"""What every fuzz suite checks, whatever the input surface: guestcheck run as users run it (a process),
an exit code from the README's tables, never a traceback or an "internal error", and nothing written
outside the paths the README documents (checked in a temporary root)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
INTERRUPTED = 130


@cache
def documented_exit_codes() -> dict[str, frozenset[int]]:
    """README "Exit codes of every command": command -> the codes its row names ("10-19" is a range)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Exit codes of every command", 1)[1].split("\n#", 1)[0]
    table: dict[str, frozenset[int]] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        codes: set[int] = set()
        for low, high in re.findall(r"\b(\d+)(?:-(\d+))?\b", cells[1].split(": see")[0]):
            codes.update(range(int(low), int(high or low) + 1))
        for command in re.findall(r"`([a-z]+)", cells[0]):
            table[command] = frozenset(codes)
    return table


def run_guestcheck(args: Sequence[str], *, env: Optional[Mapping[str, str]] = None, stdin: Optional[str] = None,
                   timeout: float = 60, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """`python3 -m guestcheck ARGS` from this checkout, as a user runs it."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("GUESTCHECK_DEBUG", None)  # a traceback must never be how an error shows
    return subprocess.run([sys.executable, "-m", "guestcheck", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=str(cwd or REPO), errors="replace")


def assert_clean_exit(out: subprocess.CompletedProcess, command: str) -> None:
    """The exit code is in `command`'s README table; failures are one line; no traceback, no internal error."""
    allowed = documented_exit_codes()[command]
    assert "Traceback" not in out.stderr, out.stderr
    assert "internal error" not in out.stderr, out.stderr
    assert out.returncode in allowed, (out.returncode, sorted(allowed), out.stderr[-2000:])


def tree(root: Path) -> dict[str, tuple]:
    """Every path under `root` with its type, mode, link target and content digest."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                what: object = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                what = None
            out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), what)
    return out


def changed_outside(before: Mapping[str, tuple], after: Mapping[str, tuple], allowed: Iterable[str]) -> list[str]:
    """Paths added, removed or changed that match none of the `allowed` prefixes (relative to the root)."""
    prefixes = tuple(allowed)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    return sorted(p for p in changed if not any(p == a.rstrip("/") or p.startswith(a) for a in prefixes))


def examples(ci: int) -> int:
    """A suite's example count: `ci` under the derandomized CI profile (40 examples by default), scaled up with
    the profile, so the release profile's long random search really runs longer (2000: 50 times `ci`)."""
    from hypothesis import settings

    return max(ci, settings.default.max_examples * ci // 40)
