"""/etc/guestcheck/guestcheck.conf: the one loader of the config file, for first boot ([firstboot]), refresh and
the fleet outputs ([fleet]). Each reader gets defaults for anything missing or wrong, and each mistake as a
problem to tell the admin; none stops the boot check.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from guestcheck.collect.fs import read
from guestcheck.names import configured_profile_name
from guestcheck.quantities import DEFAULT_SAMPLE_SECONDS, sample_seconds_from_text, seconds_from_text
from guestcheck.roots import Roots

CONFIG_NAME = "guestcheck/guestcheck.conf"  # under /etc
MAX_CONFIG = 1 << 20  # read through the one bounded reader: a FIFO or /dev/zero there is "not a regular file"
FIRSTBOOT = "firstboot"
FLEET = "fleet"
_TRUE, _FALSE = ("yes", "true", "on", "1"), ("no", "false", "off", "0")
_CHOICES = {"yes": "yes", "true": "yes", "on": "yes", "1": "yes", "no": "no", "false": "no", "off": "no",
            "0": "no", "auto": "auto", "": "auto"}


def config_path(roots: Roots) -> str:
    return os.path.join(roots.etc, CONFIG_NAME)


def on_machine(roots: Roots, path: str) -> str:
    """An absolute path from the config file (no `..`, see _apply_setting), seen through the roots."""
    return os.path.join(roots.top, path.lstrip("/")) if roots.top != "/" else path


def read_config(roots: Roots) -> Tuple[Any, Optional[str]]:
    """The parsed file (a ConfigParser), or None and why not (None too when it is simply absent)."""
    import configparser  # only when there is a file to parse

    path = config_path(roots)
    got = read(path, MAX_CONFIG)
    if got.value is None:
        return None, None if got.problem == "missing" else f"cannot read {path} ({got.problem}): using defaults"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(got.value, source=path)
    except configparser.Error as e:
        return None, f"{path} is not an INI file ({str(e).splitlines()[0]}): using defaults"
    return parser, None


# --- [firstboot] -------------------------------------------------------------------------------------------

@dataclass
class Settings:
    enabled: bool = True
    profile: Optional[str] = None  # None: change nothing
    refused_profile: Optional[str] = None  # a `profile =` that is not a profile name: nothing is applied
    textfile_dir: Optional[str] = None  # None: the default directory, when node_exporter made it
    metrics: bool = True
    timeout_seconds: float = 120.0
    sample_seconds: float = DEFAULT_SAMPLE_SECONDS
    problems: List[str] = field(default_factory=list)


def load_settings(roots: Roots) -> Settings:
    """[firstboot]: defaults for anything missing or wrong; each mistake is noted, none stops the boot check."""
    settings = Settings()
    parser, problem = read_config(roots)
    if problem:
        settings.problems.append(problem)
    if parser is None or not parser.has_section(FIRSTBOOT):
        return settings
    path = config_path(roots)
    for key, raw in parser.items(FIRSTBOOT):
        value = raw.strip()
        try:
            _apply_setting(settings, key, value)
        except ValueError as e:
            settings.problems.append(f"{path}: [{FIRSTBOOT}] {key} = {value!r} ignored: {e}")
            if key == "profile":
                settings.refused_profile = value
    return settings


def _apply_setting(settings: Settings, key: str, value: str) -> None:
    if key == "enabled":
        if value.lower() not in _TRUE + _FALSE:
            raise ValueError("expected yes or no")
        settings.enabled = value.lower() in _TRUE
    elif key == "profile":
        if value and not configured_profile_name(value):
            raise ValueError("expected a profile name from `guestcheck tune list` (letters, digits, '.', '_', "
                             "'-'; not a path); no profile is applied")
        settings.profile = value or None
    elif key == "textfile_dir":
        if value.lower() in _FALSE:
            settings.metrics = False
        elif value:
            if not value.startswith("/") or ".." in value.split("/") or not value.isprintable():
                raise ValueError("expected an absolute path without '..', or no")
            settings.textfile_dir = os.path.normpath(value)
    elif key == "timeout":
        settings.timeout_seconds = seconds_from_text(value, 1, 3600)  # the same rule as --sample
    elif key == "sample":
        settings.sample_seconds = sample_seconds_from_text(value, 60)
    else:
        raise ValueError("unknown key")


def textfile_dir(settings: Settings, roots: Roots) -> Optional[str]:
    """Where node_exporter's textfile goes: the configured directory (never made: a missing one is a problem when
    writing), else the default one only if node_exporter made it; None when metrics are off."""
    from guestcheck.render.prometheus import DEFAULT_TEXTFILE_DIR

    if not settings.metrics:
        return None
    if settings.textfile_dir:
        return on_machine(roots, settings.textfile_dir)
    default = on_machine(roots, DEFAULT_TEXTFILE_DIR)
    return default if os.path.isdir(default) else None


# --- [fleet] -----------------------------------------------------------------------------------------------

@dataclass
class FleetSettings:
    ansible_facts: str = "auto"  # auto: when facts.d exists | yes: make facts.d if missing | no
    problems: List[str] = field(default_factory=list)


def load_fleet_settings(roots: Roots) -> FleetSettings:
    """[fleet]; a mistake is noted and the default kept (first boot's settings say why a file cannot be read)."""
    settings = FleetSettings()
    parser, _ = read_config(roots)
    if parser is None or not parser.has_section(FLEET):
        return settings
    path = config_path(roots)
    for key, raw in parser.items(FLEET):
        value = raw.strip().lower()
        if key == "ansible_facts" and value in _CHOICES:
            settings.ansible_facts = _CHOICES[value]
        else:
            settings.problems.append(f"{path}: [{FLEET}] {key} = {raw.strip()!r} ignored: "
                                     + ("expected yes, no or auto" if key == "ansible_facts" else "unknown key"))
    return settings
