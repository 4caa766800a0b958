"""The operating system, from os-release, as the distro library reads it (as the shell would: quotes, escapes,
comments), so the fixes can name this distribution's package manager and service tools.

doctor runs at every boot, and importing distro (argparse, logging, subprocess...) cost more than any one area
collects. So the usual file, one that names its ID, VERSION_ID and PRETTY_NAME, is read here with the very
tokenizer distro uses (shlex, posix, whitespace-split) and distro's ID normalisation, which then decide the
answer alone; anything else (a field missing, Debian testing's version in /etc/debian_version, a file that does
not read or lex) goes to distro itself, whose other sources decide. tests/unit/test_distros.py compares the two.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from guestcheck.regularfile import read_regular
from guestcheck.roots import Roots

OS_RELEASE_LIMIT = 1 << 16  # os-release(5) is a few hundred bytes; a larger file goes to distro
# distro's NORMALIZED_OS_ID (1.8): the os-release IDs it renames
NORMALIZED_OS_ID = {"ol": "oracle", "opensuse-leap": "opensuse"}


@dataclass
class OsInfo:
    """What facts/1's host.os, os_id, os_like and os_version say."""

    pretty_name: str = ""  # "Debian GNU/Linux 12 (bookworm)"
    id: str = ""  # "debian", "ubuntu", "fedora", "rhel", "opensuse-leap", "alpine", ...
    like: List[str] = field(default_factory=list)  # ID_LIKE: the families it follows ("rhel", "fedora")
    version: str = ""  # "12"
    problem: str = ""  # why the OS is unknown, when it is for a reason worth saying


def os_release_fields(text: str) -> Dict[str, str]:
    """An os-release file's assignments, keys lowercased, as distro's parser gives them (comments, quotes,
    escapes and line continuations as the shell reads them; words that are not `KEY=value` are ignored).
    ValueError when the shell would not close a quote."""
    lexer = shlex.shlex(text.replace("\r\n", "\n").replace("\r", "\n"), posix=True)  # open()'s newlines
    lexer.whitespace_split = True
    props = {}
    for token in lexer:
        if "=" in token:
            key, value = token.split("=", 1)
            props[key.lower()] = value
    return props


def _from_fields(path: str) -> Optional[OsInfo]:
    """The answer from os-release alone, when its ID, VERSION_ID and PRETTY_NAME decide it; else None."""
    try:
        props = os_release_fields(read_regular(path, OS_RELEASE_LIMIT).decode("utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    os_id = props.get("id", "").lower().replace(" ", "_")
    if not (os_id and props.get("version_id") and props.get("pretty_name")):
        return None
    return OsInfo(props["pretty_name"], NORMALIZED_OS_ID.get(os_id, os_id), props.get("id_like", "").split(),
                  props["version_id"])


def os_info(roots: Roots) -> OsInfo:
    """os-release of the machine at `roots` (`/etc/os-release`, else `/usr/lib/os-release`). Only files are
    read: distro runs no lsb_release or uname when it is given a root directory."""
    candidates = [os.path.join(roots.etc, "os-release"), os.path.join(roots.usr_lib, "os-release")]
    chosen = next((p for p in candidates if os.path.isfile(p)), candidates[0])
    if os.path.isfile(chosen):
        found = _from_fields(chosen)
        if found is not None:
            return found
    try:
        import distro  # lazily: ~10-30 ms of imports, for the files os-release alone does not decide
    except ImportError:  # the OS name only words some fixes: doctor still runs, and says what it lacks
        return OsInfo(problem="the Python library 'distro' is missing (install python3-distro): the OS is unknown "
                              "and fixes use the Debian commands")
    try:
        d = distro.LinuxDistribution(os_release_file=chosen, root_dir=roots.top)
        pretty = d.os_release_attr("pretty_name") or d.name(pretty=True)
        return OsInfo(pretty, d.id(), d.like().split(), d.version())
    except (OSError, UnicodeError, ValueError):
        return OsInfo()  # unreadable says as much as absent: the OS is unknown, and fixes use the generic form
