"""The tuner's journal: what the machine looked like before guestcheck changed it.

It is written before the first change of every run and holds the ORIGINAL value of everything
guestcheck has touched, so `rollback` restores the machine as it was before guestcheck, whatever
was applied in between or wherever a run was killed. Applying a second profile keeps the first
backup. The file is JSON under /var/lib/guestcheck/; apply.py writes it (atomically).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

from guestcheck.roots import Roots
from guestcheck.tune import TuneError

STATE_SCHEMA = "guestcheck.tune-state/1"
PERSIST_NAME = "90-guestcheck.conf"


def state_path(roots: Roots) -> str:
    return os.path.join(roots.var_lib, "guestcheck", "tune-state.json")


def lock_path(roots: Roots) -> str:
    return os.path.join(roots.var_lib, "guestcheck", "tune.lock")


def persist_path(roots: Roots) -> str:
    return os.path.join(roots.etc, "sysctl.d", PERSIST_NAME)


@dataclass
class SysctlBackup:
    original: str  # the live value before guestcheck first changed it
    applied: str  # what guestcheck set (last successful run)


@dataclass
class State:
    profile: Optional[str] = None  # the profile applied last, None when only offloads/queues were changed
    complete: bool = True  # False while a run is in progress (or was killed)
    sysctl: Dict[str, SysctlBackup] = field(default_factory=dict)
    persist_original: Optional[str] = None  # the persist file's content before guestcheck, None if absent
    persist_recorded: bool = False  # whether persist_original was taken (the file may have been absent)
    features: Dict[str, Dict[str, bool]] = field(default_factory=dict)  # iface -> changeable feature -> on
    channels: Dict[str, Dict[str, int]] = field(default_factory=dict)  # iface -> rx/tx/other/combined

    def empty(self) -> bool:
        return not (self.sysctl or self.persist_recorded or self.features or self.channels)

    def to_text(self) -> str:
        return json.dumps({"schema": STATE_SCHEMA, **asdict(self)}, indent=2, sort_keys=True) + "\n"

    def copy(self) -> State:
        return state_from_text(self.to_text(), "<copy>")


def state_from_text(text: str, path: str) -> State:
    damaged = f"{path} is damaged"
    try:
        data = json.loads(text)
    except ValueError as e:
        raise TuneError(f"{damaged}: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
        raise TuneError(f"{damaged}: not a {STATE_SCHEMA} document")
    try:
        return State(
            profile=_opt_str(data.get("profile")),
            complete=bool(data.get("complete", True)),
            sysctl={str(k): SysctlBackup(str(v["original"]), str(v["applied"]))
                    for k, v in dict(data.get("sysctl", {})).items()},
            persist_original=_opt_str(data.get("persist_original")),
            persist_recorded=bool(data.get("persist_recorded", False)),
            features={str(i): {str(n): bool(on) for n, on in dict(f).items()}
                      for i, f in dict(data.get("features", {})).items()},
            channels={str(i): {str(n): int(c) for n, c in dict(ch).items()}
                      for i, ch in dict(data.get("channels", {})).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise TuneError(f"{damaged}: {type(e).__name__}: {e}") from None


def _opt_str(value: object) -> Optional[str]:
    return None if value is None else str(value)


def load_state(roots: Roots) -> Optional[State]:
    """The journal, or None when guestcheck has changed nothing on this machine."""
    path = state_path(roots)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TuneError(f"cannot read {path}: {e.strerror}") from None
    return state_from_text(text, path)
