"""The one lenient INI reader, for the dialects that agree: systemd's .link files, TuneD's tuned.conf and
NetworkManager's run-state keyfiles. '#' and ';' start a comment line, `[section]` opens a section, `key = value`
lines inside one are kept in order (a key may repeat), and anything else is skipped, as those programs do.

Not for guestcheck.conf (configparser: strict, a mistake is a problem the admin is told) nor for guestcheck's own
profiles (tune/profile.py: every line is checked, `# reason:` comments belong to the next key): those dialects
differ on purpose.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

Sections = Dict[str, List[Tuple[str, str]]]


def ini_sections(text: str) -> Sections:
    """section -> [(key, value)] in file order, keys and values stripped; a repeated section continues."""
    out: Sections = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, [])
            continue
        if "=" in line and section:
            key, _, value = line.partition("=")
            out[section].append((key.strip(), value.strip()))
    return out
