"""Tuning profiles: TuneD-style INI files with `include=`, raise-only values and our own guards.

    [main]
    summary = one line
    include = other-profile, another

    [guestcheck]
    min_ram_mb = 1024
    requires_guaranteed_memory = yes

    [sysctl]
    # reason: why this key has this value (one line, right above the key)
    net.ipv4.tcp_rmem = >4096 87380 16777216

`>VALUE` means "raise only": the live value is kept when it is already higher, element by element for
multi-value keys such as tcp_rmem, so a kernel that ships 32 MiB is never lowered to 16 MiB.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

from guestcheck.tune import TuneError
from guestcheck.tune.keys import BadKey, check_syntax

PROFILE_SUFFIX = ".conf"
SHARE_DIR = "/usr/share/guestcheck/profiles"
ENV_PROFILES = "GUESTCHECK_PROFILES"
SECTIONS = ("main", "sysctl", "guestcheck")
GUARD_KEYS = ("min_ram_mb", "requires_guaranteed_memory")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KEY = re.compile(r"^-?[A-Za-z0-9_][A-Za-z0-9_.*/:-]*$")
_TRUE, _FALSE = ("yes", "true", "1", "on"), ("no", "false", "0", "off")


class ProfileError(TuneError):
    """A profile that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Setting:
    key: str  # dotted sysctl name: net.ipv4.tcp_rmem
    value: str  # whitespace normalised, without the ">" marker
    raise_only: bool
    reason: str
    where: str  # "file:line", for messages


@dataclass(frozen=True)
class Guards:
    min_ram_mb: Optional[int] = None
    requires_guaranteed_memory: bool = False

    def merged(self, other: Guards) -> Guards:
        """The stricter of two guards: an included profile's guard still applies."""
        rams = [m for m in (self.min_ram_mb, other.min_ram_mb) if m is not None]
        return Guards(max(rams) if rams else None,
                      self.requires_guaranteed_memory or other.requires_guaranteed_memory)


@dataclass
class Profile:
    name: str
    path: str
    summary: str = ""
    includes: List[str] = field(default_factory=list)
    settings: Dict[str, Setting] = field(default_factory=dict)  # after includes, in file order
    guards: Guards = field(default_factory=Guards)


def normalise_key(key: str) -> str:
    """sysctl.d allows "net/ipv4/tcp_rmem" as well as "net.ipv4.tcp_rmem"; compare in the dotted form."""
    key = key.strip()
    if "/" in key and ("." not in key or key.index("/") < key.index(".")):
        key = key.replace(".", "\0").replace("/", ".").replace("\0", "/")
    return key


def normalise_value(value: str) -> str:
    return " ".join(value.split())


def parse_text(text: str, name: str, path: str) -> Profile:
    """One file, without resolving includes. Raises ProfileError naming path:line."""
    profile = Profile(name=name, path=path)
    section: Optional[str] = None
    reason: Optional[str] = None
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        line = raw.strip()
        if not line:
            reason = None
            continue
        if line[0] in "#;":
            body = line[1:].strip()
            if body.lower().startswith("reason:"):
                reason = body[len("reason:"):].strip()
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ProfileError(f"{where}: unclosed section header {line!r}")
            section = line[1:-1].strip().lower()
            if section not in SECTIONS:
                raise ProfileError(f"{where}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
            if section in seen:
                raise ProfileError(f"{where}: section [{section}] appears twice")
            seen.add(section)
            reason = None
            continue
        if "=" not in line:
            raise ProfileError(f"{where}: expected KEY = VALUE, got {line!r}")
        if section is None:
            raise ProfileError(f"{where}: {line!r} is outside any section (start with [main] or [sysctl])")
        key, _, value = (part.strip() for part in line.partition("="))
        _assign(profile, section, key, value, reason, where)
        reason = None
    return profile


def _assign(profile: Profile, section: str, key: str, value: str, reason: Optional[str], where: str) -> None:
    if section == "main":
        if key == "summary":
            profile.summary = value
        elif key == "include":
            names = [n.strip() for n in value.split(",") if n.strip()]
            for n in names:
                if not _NAME.match(n):
                    raise ProfileError(f"{where}: bad profile name {n!r} in include")
            profile.includes = names
        else:
            raise ProfileError(f"{where}: unknown key {key!r} in [main] (known: summary, include)")
    elif section == "guestcheck":
        profile.guards = _guard(profile.guards, key, value, where)
    else:
        profile.settings[normalise_key(key)] = _setting(key, value, reason, where)


def _guard(guards: Guards, key: str, value: str, where: str) -> Guards:
    if key == "min_ram_mb":
        if not value.isdigit():
            raise ProfileError(f"{where}: min_ram_mb must be a whole number of MiB, got {value!r}")
        return replace(guards, min_ram_mb=int(value))
    if key == "requires_guaranteed_memory":
        if value.lower() not in _TRUE + _FALSE:
            raise ProfileError(f"{where}: requires_guaranteed_memory must be yes or no, got {value!r}")
        return replace(guards, requires_guaranteed_memory=value.lower() in _TRUE)
    raise ProfileError(f"{where}: unknown key {key!r} in [guestcheck] (known: {', '.join(GUARD_KEYS)})")


def _setting(key: str, value: str, reason: Optional[str], where: str) -> Setting:
    if not _KEY.match(key) or normalise_key(key).strip(".") != normalise_key(key) or ".." in key:
        raise ProfileError(f"{where}: {key!r} is not a sysctl name")
    if key.startswith("-") or "*" in key:
        raise ProfileError(f"{where}: {key!r}: a profile names exact keys (no '-' prefix, no globs)")
    try:
        check_syntax(normalise_key(key))  # the same check as journal keys and every /proc/sys path
    except BadKey as e:
        raise ProfileError(f"{where}: {e}") from None
    raise_only = value.startswith(">")
    if raise_only:
        value = value[1:].strip()
        if not value or not all(_is_int(v) for v in value.split()):
            raise ProfileError(f"{where}: raise-only (>) needs whole numbers, got {value!r}")
    if not value:
        raise ProfileError(f"{where}: {key} has no value")
    if any(ord(c) < 32 and c != "\t" for c in value):
        raise ProfileError(f"{where}: {key} has a control character in its value")
    return Setting(normalise_key(key), normalise_value(value), raise_only, reason or "", where)


def _is_int(text: str) -> bool:
    return bool(re.fullmatch(r"-?[0-9]+", text))


# --- finding and loading -------------------------------------------------------------------------------

def profile_dirs(etc: str = "/etc", override: Optional[str] = None) -> list[str]:
    """Where profiles are looked for, first match wins: --profiles / $GUESTCHECK_PROFILES (colon list),
    else the admin's /etc/guestcheck/profiles, a source checkout's profiles/, the package's share dir."""
    chosen = override or os.environ.get(ENV_PROFILES)
    if chosen:
        return [d for d in chosen.split(os.pathsep) if d]
    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "profiles")
    return [os.path.join(etc, "guestcheck/profiles"), checkout, SHARE_DIR]


def available(dirs: Sequence[str]) -> dict[str, str]:
    """name -> path of every profile, the first directory shadowing later ones."""
    found: dict[str, str] = {}
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for entry in names:
            if entry.endswith(PROFILE_SUFFIX) and _NAME.match(entry[: -len(PROFILE_SUFFIX)]):
                found.setdefault(entry[: -len(PROFILE_SUFFIX)], os.path.join(d, entry))
    return found


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise ProfileError(f"cannot read profile {path}: {e.strerror}") from None


def load(name: str, dirs: Sequence[str]) -> Profile:
    """A profile with its includes resolved: included settings first, the including file's last (it wins)."""
    return _load(name, dirs, ())


def _locate(name: str, dirs: Sequence[str]) -> tuple[str, str]:
    if name.endswith(PROFILE_SUFFIX) and os.sep in name:  # a path given on the command line
        return os.path.basename(name)[: -len(PROFILE_SUFFIX)], name
    if not _NAME.match(name):
        raise ProfileError(f"bad profile name {name!r}")
    path = available(dirs).get(name)
    if path is None:
        known = ", ".join(sorted(available(dirs))) or "none"
        raise ProfileError(f"no profile named {name!r} in {', '.join(dirs)} (available: {known})")
    return name, path


def _load(name: str, dirs: Sequence[str], chain: tuple[str, ...]) -> Profile:
    name, path = _locate(name, dirs)
    if name in chain:
        raise ProfileError(f"{path}: include cycle: {' -> '.join((*chain, name))}")
    own = parse_text(_read(path), name, path)
    merged = Profile(name=name, path=path, summary=own.summary, includes=own.includes)
    for inc in own.includes:
        sub = _load(inc, dirs, (*chain, name))
        merged.settings.update(sub.settings)
        merged.guards = merged.guards.merged(sub.guards)
    for key, setting in own.settings.items():
        merged.settings.pop(key, None)  # the including profile's order and value win
        merged.settings[key] = setting
    merged.guards = merged.guards.merged(own.guards)
    return merged
