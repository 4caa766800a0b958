"""The way to the peer: whether the kernel has a route at all, and which interface carries it.

Both questions use doctor's own route lookups (guestcheck/collect/path.py), so a selftest and doctor never
disagree about the path: the connected-UDP probe (sends nothing) for "is there a route", then netlink
(exact, follows policy routing), else the interface that holds the probe's source address.
"""

from __future__ import annotations

from typing import Optional

from guestcheck.collect.path import kernel_route_probe, netlink_route


def _family(address: str) -> str:
    return "ipv6" if ":" in address else "ipv4"


def has_route(address: str) -> bool:
    """Whether the kernel would route a packet to `address` (ENETUNREACH or no source address: no)."""
    return kernel_route_probe(_family(address), address) is not None


def _holder_of(source: str) -> Optional[str]:
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if any(a.address.split("%")[0] == source for a in addresses):
            return name
    return None


def egress_interface(address: str) -> Optional[str]:
    """The interface the kernel would send to `address` through; None when nothing says."""
    family = _family(address)
    answer, _problem = netlink_route(family, address)
    if answer is not None and answer.get("dev"):
        return str(answer["dev"])
    probed = kernel_route_probe(family, address)
    if probed is None:
        return None
    try:
        return _holder_of(probed[1])
    except Exception:  # psutil missing or failing: the interface stays unknown, the caller asks for --expect
        return None
