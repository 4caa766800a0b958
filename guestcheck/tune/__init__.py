"""The tuner: the only code that writes to the system.

profile.py reads profiles, plan.py compares them with the live kernel; units/ holds one unit per kind of
setting (plan, apply, verify, rollback), engine.py runs any of them (journal first, apply, read back, persist)
and is the only module that starts a change; journal.py keeps the journal that makes every change reversible;
service.py holds the guarded operations (sizing, memory, owners) the CLI and first boot call; conflicts.py
tells which sysctl.d file wins at boot, ethtool_set.py turns offloads on and sets queue counts.
"""

from __future__ import annotations


class TuneError(Exception):
    """A problem the user can act on; the CLI prints it as one line and exits non-zero (`exit_code`)."""

    exit_code = 3  # README "Exit codes": the tuner could not do it, and the system is as it was
    root_may_help = True  # whether the CLI suggests sudo to a user who is not root
