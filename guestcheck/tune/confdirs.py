"""systemd's configuration directories, searched as its conf-files lookup does (sysctl.d, systemd/network):
/etc, then /run, /usr/local/lib, /usr/lib and /lib, where a file hides same-named files in the directories
after it. One lookup for the sysctl.d files (conflicts.py) and the .link files (linkfile.py)."""

from __future__ import annotations

import os
from typing import Dict, List

from guestcheck.collect.fs import listdir
from guestcheck.roots import Roots


def search_dirs(roots: Roots, subdir: str) -> List[str]:
    """In precedence order; /lib is /usr/lib on merged-/usr systems, so a directory is counted once."""
    dirs = [os.path.join(roots.etc, subdir), os.path.join(roots.run, subdir),
            os.path.join(roots.top, "usr/local/lib", subdir), os.path.join(roots.usr_lib, subdir),
            os.path.join(roots.lib, subdir)]
    out: List[str] = []
    for d in dirs:
        if all(os.path.realpath(d) != os.path.realpath(seen) for seen in out):
            out.append(d)
    return out


def first_by_name(dirs: List[str], suffix: str) -> Dict[str, str]:
    """name -> path of every file ending in `suffix`, the first directory's file winning; masked ones included
    (what masks a file differs: the caller decides)."""
    chosen: Dict[str, str] = {}
    for d in dirs:
        for entry in listdir(d):
            if entry.endswith(suffix):
                chosen.setdefault(entry, os.path.join(d, entry))
    return chosen
