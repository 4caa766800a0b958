"""Where the collectors and the tuner look: the real system, or a fake tree in tests.

Every reader and writer takes a `Roots` instead of hard-coding `/sys` or `/etc`, so unit
tests point the collectors at trees built from real captures, and the tuner's live tests
write to a temporary /etc and /var/lib while the kernel they tune is a namespace's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Roots:
    """Where the real system (or a fake tree) keeps /sys, /proc, /etc and the rest."""

    sys: str = "/sys"
    proc: str = "/proc"
    etc: str = "/etc"
    run: str = "/run"
    var_lib: str = "/var/lib"
    usr_lib: str = "/usr/lib"
    lib: str = "/lib"
    top: str = "/"

    @classmethod
    def under(cls, base: str) -> Roots:
        """All paths below one directory: a whole fake machine."""
        j = os.path.join
        return cls(
            sys=j(base, "sys"),
            proc=j(base, "proc"),
            etc=j(base, "etc"),
            run=j(base, "run"),
            var_lib=j(base, "var/lib"),
            usr_lib=j(base, "usr/lib"),
            lib=j(base, "lib"),
            top=base,
        )

    @classmethod
    def from_env(cls) -> Roots:
        """The real machine, unless GUESTCHECK_ROOT names a fake one (used by tests and support)."""
        base = os.environ.get("GUESTCHECK_ROOT")
        return cls.under(base) if base else cls()
