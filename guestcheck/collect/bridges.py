"""Linux bridges (STP, forward delay, ports), from sysfs (/sys/class/net/BR/bridge/).

Its time attributes are in clock_t, i.e. USER_HZ ticks (100 a second on every architecture Linux runs VMs on;
sysconf(SC_CLK_TCK) says), the same centiseconds `ip -d link` prints: forward_delay 1500 is 15 s.
"""

from __future__ import annotations

import os
from typing import List

from guestcheck.collect.area import Run
from guestcheck.collect.fs import cat_int, listdir
from guestcheck.facts import Bridge, BridgePort
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


AREA = "bridges"


def collect(run: Run) -> List[Bridge]:
    return collect_bridges(run.roots)
