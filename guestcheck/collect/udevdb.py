"""What udev knows about a network interface: hwdb's model and vendor names, and the predictable names.

udevd keeps each device's properties in /run/udev/data/n<IFINDEX>, one `E:KEY=value` line per property (other
lines: `I:` initialised time, `G:`/`Q:` tags, `V:` database version). That file is what libudev, and so
pyudev, reads for `Devices.from_name(ctx, "net", name).properties`: reading it here gives the same answer
without importing pyudev (about 24 ms) and libudev on doctor's start-up path, and under a fake root
(GUESTCHECK_ROOT, tests, support replays) ROOT/run/udev/data/n<IFINDEX> replays it like every other file.
pyudev is used where only it serves: udev's event stream for `guestcheck watch`.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

from guestcheck.regularfile import read_regular
from guestcheck.roots import Roots
from guestcheck.uevent import udev_db_properties

MAX_DB_BYTES = 64 * 1024  # a NIC's entry is well under 2 KiB
MAX_VALUE_CHARS = 256

# hwdb's names (udev's 75-net-description.rules imports them for the NIC's PCI or USB ids)
MODEL, VENDOR = "ID_MODEL_FROM_DATABASE", "ID_VENDOR_FROM_DATABASE"
# the names systemd's net_id builtin proposes (systemd.net-naming-scheme(7)), and the one it chose
NET_NAME_KEYS = ("ID_NET_NAME", "ID_NET_NAME_ONBOARD", "ID_NET_NAME_SLOT", "ID_NET_NAME_PATH", "ID_NET_NAME_MAC")
WANTED = (MODEL, VENDOR, *NET_NAME_KEYS)


def db_path(roots: Roots, ifindex: int) -> str:
    return os.path.join(roots.run, "udev/data", f"n{ifindex}")


def _read_small_file(path: str) -> Optional[str]:
    """A regular file's text, at most MAX_DB_BYTES; None for anything else (absent, a FIFO, too big)."""
    try:
        return read_regular(path, MAX_DB_BYTES).decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def parse_db(text: str) -> Dict[str, str]:
    """The wanted `E:` properties of one database file."""
    out: Dict[str, str] = {}
    for key, value in udev_db_properties(text):
        if key in WANTED and value.strip():
            out[key] = value.strip()[:MAX_VALUE_CHARS]
    return out


def udev_properties(roots: Roots, ifindex: Optional[int]) -> Optional[Dict[str, str]]:
    """The interface's wanted udev properties; None when udev has no entry for it (no udevd, a container,
    a device udev has not processed yet)."""
    if ifindex is None or ifindex <= 0:
        return None
    text = _read_small_file(db_path(roots, ifindex))
    return None if text is None else parse_db(text)
