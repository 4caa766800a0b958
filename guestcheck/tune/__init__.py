"""The tuner: the only code that writes to the system.

profile.py reads profiles, plan.py compares them with the live kernel, apply.py writes (and is the
only module that does), state.py keeps the journal that makes every change reversible, conflicts.py
tells which sysctl.d file wins at boot, ethtool_set.py turns offloads on and sets queue counts.
"""

from __future__ import annotations


class TuneError(Exception):
    """A problem the user can act on; the CLI prints it as one line and exits non-zero."""
