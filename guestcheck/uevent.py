"""The one parser of a sysfs `uevent` file (KEY=VALUE lines: DEVTYPE=vlan, INTERFACE=eth0, IFINDEX=2)."""

from __future__ import annotations

from typing import Dict, Optional


def parse_uevent(text: Optional[str]) -> Dict[str, str]:
    """KEY -> VALUE; a line without '=' is skipped, a later KEY wins. None (unreadable) is empty."""
    return dict(line.split("=", 1) for line in (text or "").splitlines() if "=" in line)
