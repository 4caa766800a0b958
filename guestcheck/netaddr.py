"""Address arithmetic without the ipaddress module (doctor's start-up is measured): one CIDR test for all, and
the one reading of "is this an IPv6 address" (it holds a colon) for sockets and for text."""

from __future__ import annotations

import socket
from typing import Optional

from guestcheck.quantities import parse_int


def family_of(address: str) -> int:
    """socket.AF_INET6 for an IPv6 address, else socket.AF_INET."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def bracketed(host: str) -> str:
    """An address as it goes before ":port": an IPv6 one in brackets."""
    return f"[{host}]" if ":" in host else host


def in_network(address: Optional[str], network: str) -> bool:
    """Whether `address` (IPv4 or IPv6) lies in `network` ("a.b.c.d/len", "x::/len"); False when unparsable."""
    if not address:
        return False
    base, _, plen_text = network.partition("/")
    af = family_of(base)
    width = 128 if af == socket.AF_INET6 else 32
    try:
        a = int.from_bytes(socket.inet_pton(af, address), "big")
        b = int.from_bytes(socket.inet_pton(af, base), "big")
        plen = parse_int(plen_text, max_digits=3) if plen_text else width
    except (OSError, ValueError):
        return False
    if not 0 <= plen <= width:
        return False
    shift = width - plen
    return a >> shift == b >> shift
