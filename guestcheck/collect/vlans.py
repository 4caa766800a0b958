"""802.1Q VLAN interfaces.

VLANs come from /proc/net/vlan/config, which the 8021q module keeps per network namespace; without it,
sysfs still marks VLAN devices (DEVTYPE=vlan) and links their lower device, but not their id.
"""

from __future__ import annotations

import os
from typing import List, Optional

from guestcheck.collect.area import Run
from guestcheck.collect.fs import cat, listdir
from guestcheck.facts import Vlan
from guestcheck.quantities import maybe_int
from guestcheck.roots import Roots
from guestcheck.uevent import parse_uevent


def parse_vlan_config(text: Optional[str]) -> List[Vlan]:
    """Rows of /proc/net/vlan/config: "eth0.100       | 100  | eth0" after two header lines."""
    out = []
    for line in (text or "").splitlines():
        cols = [c.strip() for c in line.split("|")]
        vid = maybe_int(cols[1], max_digits=4) if len(cols) == 3 else None
        if vid is None:
            continue  # the "VLAN Dev name | VLAN ID" and "Name-Type:" headers
        out.append(Vlan(cols[0], vid, cols[2] or None, "procfs"))
    return out


def _sysfs_vlans(roots: Roots) -> List[Vlan]:
    net = os.path.join(roots.sys, "class/net")
    out = []
    for name in listdir(net):
        if parse_uevent(cat(os.path.join(net, name, "uevent"))).get("DEVTYPE") != "vlan":
            continue
        lowers = [e[len("lower_"):] for e in listdir(os.path.join(net, name)) if e.startswith("lower_")]
        out.append(Vlan(name, None, lowers[0] if lowers else None, "sysfs"))
    return out


def collect_vlans(roots: Roots) -> List[Vlan]:
    vlans = parse_vlan_config(cat(os.path.join(roots.proc, "net/vlan/config")))
    known = {v.name for v in vlans}
    return vlans + [v for v in _sysfs_vlans(roots) if v.name not in known]


AREA = "vlans"


def collect(run: Run) -> List[Vlan]:
    return collect_vlans(run.roots)
