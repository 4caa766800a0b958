"""The kernel release as numbers: several checks and the tuner change their advice at a kernel version."""

from __future__ import annotations

import re
from typing import Optional, Tuple

from guestcheck.quantities import parse_int


def kernel_version(release: Optional[str]) -> Optional[Tuple[int, int]]:
    """"5.4.0-150-generic" -> (5, 4); None when the release does not start with a version."""
    match = re.match(r"([0-9]{1,9})\.([0-9]{1,9})", release or "")
    return (parse_int(match.group(1)), parse_int(match.group(2))) if match else None
