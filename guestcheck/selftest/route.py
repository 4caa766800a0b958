"""Which interface carries the path to the peer: its speed is the default expected rate.

Two strategies, tried in order: ask the kernel's routing table over netlink (exact, follows policy
routing), else learn the source address the kernel would pick (a UDP connect sends nothing) and find the
interface that holds it. None means unknown; the caller then asks for --expect.
"""

from __future__ import annotations

import socket
from typing import Callable, Optional


def ask_netlink(address: str) -> Optional[str]:
    from pyroute2 import IPRoute  # heavy: imported only when a selftest needs it

    with IPRoute() as ipr:
        messages = list(ipr.route("get", dst=address))  # a tuple in pyroute2 0.7, an iterator later
    if not messages:
        return None
    oif = messages[0].get_attr("RTA_OIF")
    return socket.if_indextoname(oif) if oif else None


def ask_source_address(address: str) -> Optional[str]:
    import psutil

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((address, 9))  # UDP connect only picks a route and a source address
        source = sock.getsockname()[0]
    for name, addresses in psutil.net_if_addrs().items():
        if any(a.address.split("%")[0] == source for a in addresses):
            return name
    return None


STRATEGIES: list[Callable[[str], Optional[str]]] = [ask_netlink, ask_source_address]


def egress_interface(address: str) -> Optional[str]:
    for strategy in STRATEGIES:
        try:
            name = strategy(address)
        except Exception:  # netlink errors, no route, a library missing: this strategy says nothing
            continue
        if name:
            return name
    return None
