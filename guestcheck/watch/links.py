"""Per-interface and per-queue counters for `watch`: what `ip -s link` and `ethtool -S` show.

Interface totals come from /sys/class/net/IFACE/statistics (the kernel's rtnl_link_stats64). Per-queue counters
exist only in the driver's own statistics (ETHTOOL_GSTATS), whose names every driver spells its own way; the
patterns below cover the common ones (virtio_net, hv_netvsc, ixgbe/igb: rx_queue_0_bytes; ENA: queue_0_rx_bytes;
mlx5: rx0_bytes; i40e/iavf: rx-0.bytes; MANA: rx-0_bytes). A driver with none of them shows interface totals only.
What counts as a drop is doctor's own list (guestcheck/drivercounters.py INTERFACE_COUNTERS), so `watch` and
`doctor` agree; this reader adds the byte and packet counters a live view needs and doctor does not keep.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from guestcheck.collect.fs import cat_int, listdir
from guestcheck.drivercounters import INCLUDED_IN_TX_ERRORS, INTERFACE_COUNTERS
from guestcheck.quantities import parse_int
from guestcheck.roots import Roots

# statistics/ files summed into the interface's figures: the drop and error counters are doctor's
RX_DROPS = tuple(c for c in INTERFACE_COUNTERS if c.startswith("rx_"))
TX_DROPS = tuple(c for c in INTERFACE_COUNTERS if c.startswith("tx_") and c not in INCLUDED_IN_TX_ERRORS)
TOTALS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", *RX_DROPS, *TX_DROPS)

# driver statistic name -> (direction, queue, what); what is bytes | packets | drops
_QUEUE_PATTERNS = (
    re.compile(r"(?P<dir>rx|tx)_queue_(?P<q>[0-9]{1,9})_(?P<what>bytes|packets|drops)"),
    re.compile(r"queue_(?P<q>[0-9]{1,9})_(?P<dir>rx|tx)_(?P<what>bytes|cnt|drops)"),
    re.compile(r"(?P<dir>rx|tx)(?P<q>[0-9]{1,9})_(?P<what>bytes|packets|dropped)"),
    re.compile(r"(?P<dir>rx|tx)-(?P<q>[0-9]{1,9})[._](?P<what>bytes|packets|drops|dropped)"),
)
_WHAT = {"cnt": "packets", "dropped": "drops"}
MAX_QUEUES = 4096

QueueKey = Tuple[str, int]  # ("rx", 0)


@dataclass
class LinkReading:
    """One interface's cumulative counters at one moment."""

    name: str
    ifindex: Optional[int]
    totals: Dict[str, int]  # the TOTALS that could be read
    queues: Dict[QueueKey, Dict[str, int]] = field(default_factory=dict)  # ("rx", 0) -> {"bytes": n, ...}


def queue_counter(name: str) -> Optional[Tuple[QueueKey, str]]:
    """A driver statistic's name -> ((direction, queue), bytes|packets|drops), or None when it is not one."""
    for pattern in _QUEUE_PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            queue = parse_int(match.group("q"))
            if queue >= MAX_QUEUES:
                return None
            what = match.group("what")
            return (match.group("dir"), queue), _WHAT.get(what, what)
    return None


def queue_counters(stats: Dict[str, int]) -> Dict[QueueKey, Dict[str, int]]:
    out: Dict[QueueKey, Dict[str, int]] = {}
    for name, value in stats.items():
        found = queue_counter(name)
        if found is not None and isinstance(value, int) and value >= 0:
            key, what = found
            out.setdefault(key, {})[what] = value
    return {k: v for k, v in out.items() if "bytes" in v or "packets" in v}


def interface_names(roots: Roots) -> List[str]:
    return sorted(listdir(os.path.join(roots.sys, "class/net")))


def read_link(roots: Roots, name: str, ethtool: Any = None) -> Optional[LinkReading]:
    """The interface's counters, or None when it is gone (removed between listing and reading)."""
    base = os.path.join(roots.sys, "class/net", name)
    totals = {}
    for counter in TOTALS:
        value = cat_int(os.path.join(base, "statistics", counter))
        if value is not None:
            totals[counter] = value
    if not totals:
        return None
    queues: Dict[QueueKey, Dict[str, int]] = {}
    if ethtool is not None:
        try:
            queues = queue_counters(ethtool.stats(name))
        except Exception:  # EthtoolError, or a replay that lacks stats: totals still stand
            queues = {}
    return LinkReading(name, cat_int(os.path.join(base, "ifindex")), totals, queues)


def read_links(roots: Roots, names: Iterable[str], ethtool: Any = None) -> Dict[str, LinkReading]:
    out = {}
    for name in names:
        reading = read_link(roots, name, ethtool)
        if reading is not None:
            out[name] = reading
    return out
