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
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple, Union

from guestcheck.names import valid_profile_name
from guestcheck.quantities import maybe_int
from guestcheck.regularfile import TooLarge, read_regular
from guestcheck.sysctlnames import normalise_key
from guestcheck.text import escape_control
from guestcheck.tune import TuneError
from guestcheck.tune.keys import BadKey, check_syntax

PROFILE_SUFFIX = ".conf"
SHARE_DIR = "/usr/share/guestcheck/profiles"
ENV_PROFILES = "GUESTCHECK_PROFILES"
SECTIONS = ("main", "sysctl", "guestcheck")
GUARD_KEYS = ("min_ram_mb", "requires_guaranteed_memory", "max_buffer_share")
_KEY = re.compile(r"^-?[A-Za-z0-9_][A-Za-z0-9_.*/:-]*$")
_TRUE, _FALSE = ("yes", "true", "1", "on"), ("no", "false", "0", "off")

# Caps on what one profile may cost, includes and all: real profiles are a few KiB, two levels deep.
MAX_INCLUDE_DEPTH = 16  # profiles on the longest include chain, the profile itself counted
MAX_INCLUDED_FILES = 64  # distinct profiles in one profile's include closure
MAX_FILE_BYTES = 64 * 1024
MAX_TOTAL_BYTES = 1024 * 1024  # of the whole closure
MAX_KEYS = 4096  # settings after the includes are merged
MAX_RAM_MB = 1 << 30  # min_ram_mb above 1 PiB is a typo, not a guard
_INT64 = 1 << 64  # raise-only fields are kernel integers: at most 64 bits


class ProfileError(TuneError):
    """A profile that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Setting:
    key: str  # dotted sysctl name: net.ipv4.tcp_rmem
    value: str  # whitespace normalised, without the ">" marker
    raise_only: bool
    reason: str
    where: str  # "file:line", for messages
    source: str = ""  # where the value comes from (TuneD, ESnet, a kernel document), from "# source:"


@dataclass(frozen=True)
class Guards:
    min_ram_mb: Optional[int] = None
    requires_guaranteed_memory: bool = False
    max_buffer_share: Optional[Fraction] = None  # a path-sized buffer ceiling's most of RAM (None: 1/16)

    def merged(self, other: Guards) -> Guards:
        """The stricter of two guards: an included profile's guard still applies."""
        rams = [m for m in (self.min_ram_mb, other.min_ram_mb) if m is not None]
        shares = [s for s in (self.max_buffer_share, other.max_buffer_share) if s is not None]
        return Guards(max(rams) if rams else None,
                      self.requires_guaranteed_memory or other.requires_guaranteed_memory,
                      min(shares) if shares else None)


@dataclass
class Profile:
    name: str
    path: str
    summary: str = ""
    includes: List[str] = field(default_factory=list)
    settings: Dict[str, Setting] = field(default_factory=dict)  # after includes, in file order
    guards: Guards = field(default_factory=Guards)


def normalise_value(value: str) -> str:
    return " ".join(value.split())


def parse_text(text: str, name: str, path: str) -> Profile:
    """One file, without resolving includes. Raises ProfileError naming path:line."""
    profile = Profile(name=name, path=path)
    section: Optional[str] = None
    reason: Optional[str] = None
    source: Optional[str] = None
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        line = raw.strip()
        if not line:
            reason = source = None
            continue
        if line[0] in "#;":
            body = line[1:].strip()
            if body.lower().startswith("reason:"):
                reason = body[len("reason:"):].strip()
            elif body.lower().startswith("source:"):
                source = body[len("source:"):].strip()
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
            reason = source = None
            continue
        if "=" not in line:
            raise ProfileError(f"{where}: expected KEY = VALUE, got {line!r}")
        if section is None:
            raise ProfileError(f"{where}: {line!r} is outside any section (start with [main] or [sysctl])")
        key, _, value = (part.strip() for part in line.partition("="))
        _assign(profile, section, key, value, reason, where, source)
        reason = source = None
    return profile


def _assign(profile: Profile, section: str, key: str, value: str, reason: Optional[str], where: str,
            source: Optional[str] = None) -> None:
    if section == "main":
        if key == "summary":
            profile.summary = escape_control(value)  # shown by list/show/diff: never a terminal escape
        elif key == "include":
            names = [n.strip() for n in value.split(",") if n.strip()]
            for n in names:
                if not valid_name(n):
                    raise ProfileError(f"{where}: bad profile name {n!r} in include (a name, not a path)")
            profile.includes = list(dict.fromkeys(names))  # each once, in order
        else:
            raise ProfileError(f"{where}: unknown key {key!r} in [main] (known: summary, include)")
    elif section == "guestcheck":
        profile.guards = _guard(profile.guards, key, value, where)
    else:
        setting = _setting(key, value, reason, where)
        profile.settings[setting.key] = replace(setting, source=escape_control(source or ""))


def _guard(guards: Guards, key: str, value: str, where: str) -> Guards:
    if key == "min_ram_mb":
        mib = maybe_int(value, low=0, high=MAX_RAM_MB, max_digits=10)
        if mib is None or value != value.strip():
            raise ProfileError(f"{where}: min_ram_mb must be a whole number of MiB up to {MAX_RAM_MB}, "
                               f"got {value[:40]!r}")
        return replace(guards, min_ram_mb=mib)
    if key == "requires_guaranteed_memory":
        if value.lower() not in _TRUE + _FALSE:
            raise ProfileError(f"{where}: requires_guaranteed_memory must be yes or no, got {value!r}")
        return replace(guards, requires_guaranteed_memory=value.lower() in _TRUE)
    if key == "max_buffer_share":
        return replace(guards, max_buffer_share=parse_share(value, where))
    raise ProfileError(f"{where}: unknown key {key!r} in [guestcheck] (known: {', '.join(GUARD_KEYS)})")


MIN_SHARE = Fraction(1, 1024)


def parse_share(value: str, where: str) -> Fraction:
    """A share of RAM: "1/16" or "0.0625", from 1/1024 to 1/2 (a buffer ceiling above half the RAM is a typo)."""
    share = None
    ratio = re.fullmatch(r"([0-9]{1,4})\s*/\s*([0-9]{1,4})", value)
    if ratio and int(ratio.group(2)):
        share = Fraction(int(ratio.group(1)), int(ratio.group(2)))
    elif re.fullmatch(r"0?\.[0-9]{1,6}", value):
        share = Fraction(value)
    if share is None or not MIN_SHARE <= share <= Fraction(1, 2):
        raise ProfileError(f"{where}: max_buffer_share must be a fraction of RAM such as 1/16 or 0.0625, "
                           f"from 1/1024 to 1/2, got {value[:40]!r}")
    return share


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
            raise ProfileError(f"{where}: raise-only (>) needs whole numbers (64-bit at most), got {value[:80]!r}")
    if not value:
        raise ProfileError(f"{where}: {key} has no value")
    if not all(c.isprintable() or c == "\t" for c in value):
        raise ProfileError(f"{where}: {key} has a control character in its value")
    return Setting(normalise_key(key), normalise_value(value), raise_only, escape_control(reason or ""), where)


def _is_int(text: str) -> bool:
    return bool(re.fullmatch(r"-?[0-9]{1,20}", text)) and abs(int(text)) < _INT64


# --- finding and loading -------------------------------------------------------------------------------

def profile_dirs(etc: str = "/etc", override: Optional[str] = None) -> list[str]:
    """Where profiles are looked for, first match wins: --profiles / $GUESTCHECK_PROFILES (colon list) or
    else the admin's /etc/guestcheck/profiles; then the shipped ones, last: a source checkout's profiles/,
    the package's share dir, and the copy inside the Python package (what a pip or pipx install has). The
    shipped ones stay in the path behind --profiles, so a custom profile may include a shipped one."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shipped = [os.path.join(os.path.dirname(package), "profiles"), SHARE_DIR, os.path.join(package, "profiles")]
    chosen = override or os.environ.get(ENV_PROFILES)
    first = ([d for d in chosen.split(os.pathsep) if d] if chosen else [os.path.join(etc, "guestcheck/profiles")])
    return first + [d for d in shipped if d not in first]


def available(dirs: Sequence[str]) -> dict[str, str]:
    """name -> path of every profile, the first directory shadowing later ones."""
    found: dict[str, str] = {}
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for entry in names:
            if entry.endswith(PROFILE_SUFFIX) and valid_name(entry[: -len(PROFILE_SUFFIX)]):
                found.setdefault(entry[: -len(PROFILE_SUFFIX)], os.path.join(d, entry))
    return found


def _read(path: str) -> str:
    """A profile's text: a regular file (not a FIFO that would block, not /dev/zero), at most
    MAX_FILE_BYTES, UTF-8."""
    try:
        data = read_regular(path, MAX_FILE_BYTES)
    except OSError as e:
        raise ProfileError(f"cannot read profile {path}: {e.strerror}") from None
    except TooLarge:
        raise ProfileError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB, too big for a profile") from None
    except ValueError:
        raise ProfileError(f"{path}: not a regular file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text") from None


def load(name: str, dirs: Sequence[str]) -> Profile:
    """A profile with its includes resolved: included settings first, the including file's last (it wins)."""
    return Loader(dirs).load(name)


def valid_name(name: str) -> bool:
    """A profile name is a name, never a path (guestcheck/names.py)."""
    return valid_profile_name(name)


def _chain_text(chain: Sequence[str]) -> str:
    """`a -> b -> c`, its middle elided when the chain is long, so the error stays one readable line."""
    shown = list(chain) if len(chain) <= 8 else [*chain[:3], f"... ({len(chain) - 5} more)", *chain[-2:]]
    return " -> ".join(shown)


@dataclass
class _Expanded:
    """A profile with its includes resolved, and what its include closure cost: name -> bytes read,
    and its longest include chain (itself first)."""
    profile: Profile
    files: Dict[str, int]
    longest: Tuple[str, ...]


class Loader:
    """Resolves profiles against `dirs`, reading and expanding each file once however often it is
    included (a diamond of includes costs one read per file, not one per path), within the caps above."""

    def __init__(self, dirs: Sequence[str]) -> None:
        self.dirs = list(dirs)
        self._found: Optional[Dict[str, str]] = None
        self._parsed: Dict[str, Union[Tuple[Profile, int], ProfileError]] = {}
        self._expanded: Dict[str, _Expanded] = {}

    def available(self) -> Dict[str, str]:
        if self._found is None:
            self._found = available(self.dirs)
        return self._found

    def load(self, name: str) -> Profile:
        return self._expand(name, ()).profile

    def _locate(self, name: str) -> str:
        if not valid_name(name):
            raise ProfileError(f"bad profile name {escape_control(repr(name))} (a name such as throughput, "
                               "not a path)")
        path = self.available().get(name)
        if path is None:
            names = sorted(self.available())
            known = ", ".join(names[:12]) + (f", ... ({len(names) - 12} more)" if len(names) > 12 else "") or "none"
            raise ProfileError(f"no profile named {name!r} in {', '.join(self.dirs)} (available: {known})")
        return path

    def _parse(self, name: str) -> Tuple[Profile, int]:
        """One file, read and parsed once; a failure is remembered too."""
        got = self._parsed.get(name)
        if got is None:
            try:
                path = self._locate(name)
                text = _read(path)
                got = (parse_text(text, name, path), len(text.encode("utf-8")))
            except ProfileError as e:
                got = e
            self._parsed[name] = got
        if isinstance(got, ProfileError):
            raise got
        return got

    def _expand(self, name: str, chain: Tuple[str, ...]) -> _Expanded:
        done = self._expanded.get(name)
        if done is not None:
            return done
        own, size = self._parse(name)
        if name in chain:
            raise ProfileError(f"{own.path}: include cycle: {_chain_text((*chain, name))}")
        chain = (*chain, name)
        if len(chain) > MAX_INCLUDE_DEPTH:  # stop before the stack gets deep
            self._too_deep(chain)
        merged = Profile(name=name, path=own.path, summary=own.summary, includes=own.includes)
        files = {name: size}
        longest: Tuple[str, ...] = ()
        for inc in own.includes:
            sub = self._expand(inc, chain)
            if len(sub.longest) > len(longest):
                longest = sub.longest
            if len(chain) + len(longest) > MAX_INCLUDE_DEPTH:  # through an include expanded earlier
                self._too_deep((*chain, *longest))
            files.update(sub.files)
            merged.settings.update(sub.profile.settings)
            merged.guards = merged.guards.merged(sub.profile.guards)
        for key, setting in own.settings.items():
            merged.settings.pop(key, None)  # the including profile's order and value win
            merged.settings[key] = setting
        merged.guards = merged.guards.merged(own.guards)
        _check_size(own.path, chain, files, len(merged.settings))
        done = self._expanded[name] = _Expanded(merged, files, (name, *longest))
        return done

    def _too_deep(self, chain: Tuple[str, ...]) -> None:
        chain = chain[: MAX_INCLUDE_DEPTH + 1]
        raise ProfileError(f"{self.available()[chain[0]]}: includes nested deeper than {MAX_INCLUDE_DEPTH} "
                           f"levels: {_chain_text(chain)}")


def _check_size(path: str, chain: Sequence[str], files: Dict[str, int], keys: int) -> None:
    via = f" (via {_chain_text(chain)})" if len(chain) > 1 else ""
    if len(files) > MAX_INCLUDED_FILES:
        raise ProfileError(f"{path}: includes more than {MAX_INCLUDED_FILES} profiles{via}")
    total = sum(files.values())
    if total > MAX_TOTAL_BYTES:
        raise ProfileError(f"{path}: with its includes larger than {MAX_TOTAL_BYTES // 1024} KiB{via}")
    if keys > MAX_KEYS:
        raise ProfileError(f"{path}: with its includes sets more than {MAX_KEYS} keys{via}")
