"""The one parser of uevent properties: a sysfs `uevent` file (KEY=VALUE lines: DEVTYPE=vlan, INTERFACE=eth0,
IFINDEX=2), and the same properties as udev's database keeps them (`E:KEY=VALUE` lines in /run/udev/data)."""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple


def parse_uevent(text: Optional[str]) -> Dict[str, str]:
    """KEY -> VALUE; a line without '=' is skipped, a later KEY wins. None (unreadable) is empty."""
    return dict(line.split("=", 1) for line in (text or "").splitlines() if "=" in line)


def udev_db_properties(text: Optional[str]) -> Iterator[Tuple[str, str]]:
    """(KEY, VALUE) of each `E:` line of a udev database file, in order, as written (a later KEY may repeat one);
    other records (S: links, I: init time, G: tags...) and lines without '=' are skipped."""
    for line in (text or "").splitlines():
        if line.startswith("E:") and "=" in line:
            key, value = line[2:].split("=", 1)
            yield key, value
