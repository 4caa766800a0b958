"""Linux bridges (STP, forward delay, ports) and 802.1Q VLAN interfaces.

Bridges come from sysfs (/sys/class/net/BR/bridge/). Its time attributes are in clock_t, i.e. USER_HZ
ticks (100 a second on every architecture Linux runs VMs on; sysconf(SC_CLK_TCK) says), the same
centiseconds `ip -d link` prints: forward_delay 1500 is 15 s.
VLANs come from /proc/net/vlan/config, which the 8021q module keeps per network namespace; without it,
sysfs still marks VLAN devices (DEVTYPE=vlan) and links their lower device, but not their id.
"""

from __future__ import annotations

import os
from typing import List, Optional

from guestcheck.collect.fs import cat, cat_int, listdir
from guestcheck.facts import Bridge, BridgePort, Vlan
from guestcheck.quantities import maybe_int
from guestcheck.roots import Roots

PORT_STATES = {0: "disabled", 1: "listening", 2: "learning", 3: "forwarding", 4: "blocking"}


def user_hz() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK")) or 100
    except (ValueError, OSError):
        return 100


def collect_bridges(roots: Roots) -> List[Bridge]:
    net = os.path.join(roots.sys, "class/net")
    hz = user_hz()
    out = []
    for name in listdir(net):
        bridge_dir = os.path.join(net, name, "bridge")
        if not os.path.isdir(bridge_dir):
            continue
        delay = cat_int(os.path.join(bridge_dir, "forward_delay"))
        ports = []
        for port in listdir(os.path.join(net, name, "brif")):
            state = cat_int(os.path.join(net, name, "brif", port, "state"))
            ports.append(BridgePort(port, PORT_STATES.get(state, str(state)) if state is not None else None))
        out.append(Bridge(
            name=name,
            stp_state=cat_int(os.path.join(bridge_dir, "stp_state")),
            forward_delay_s=None if delay is None else round(delay / hz, 2),
            ports=ports,
        ))
    return out


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
        uevent = cat(os.path.join(net, name, "uevent")) or ""
        if "DEVTYPE=vlan" not in uevent.splitlines():
            continue
        lowers = [e[len("lower_"):] for e in listdir(os.path.join(net, name)) if e.startswith("lower_")]
        out.append(Vlan(name, None, lowers[0] if lowers else None, "sysfs"))
    return out


def collect_vlans(roots: Roots) -> List[Vlan]:
    vlans = parse_vlan_config(cat(os.path.join(roots.proc, "net/vlan/config")))
    known = {v.name for v in vlans}
    return vlans + [v for v in _sysfs_vlans(roots) if v.name not in known]
