"""The peer string: validated before anything uses it, then resolved to one numeric address.

It never reaches a shell (iperf3 runs from an argv list), and what reaches iperf3 is the numeric address
we resolved, so a peer like "-s" or "host;rm" is refused here instead of being read as an option.
Name resolution runs in a thread so a dead resolver cannot hold the test past --timeout.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from dataclasses import dataclass
from typing import Optional

from guestcheck.netaddr import bracketed
from guestcheck.quantities import parse_int
from guestcheck.selftest.errors import BAD_INPUT, NAME, SelftestError

DEFAULT_PORT = 5201
_HOSTNAME = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                       r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$")


@dataclass(frozen=True)
class Peer:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{bracketed(self.host)}:{self.port}"


def _bad(text: str, why: str) -> SelftestError:
    return SelftestError(BAD_INPUT, f"bad peer {text!r}: {why} (use HOST, HOST:PORT, IPV4:PORT or [IPV6]:PORT)")


def _port(text: str, raw: str) -> int:
    try:
        return parse_int(text, low=1, high=65535, max_digits=5)
    except ValueError:
        raise _bad(raw, f"port {text!r} is not a number from 1 to 65535") from None


def parse_peer(text: str, default_port: int = DEFAULT_PORT) -> Peer:
    """HOST, HOST:PORT, a bare IPv6 address, or [IPV6]:PORT."""
    raw = text
    if not text or text != text.strip() or any(c.isspace() or not c.isprintable() for c in text):
        raise _bad(raw, "empty, or contains spaces or control characters")
    if text.startswith("-"):
        raise _bad(raw, "starts with '-'")
    port = default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise _bad(raw, "missing ']'")
        if rest:
            if not rest.startswith(":"):
                raise _bad(raw, "expected ':PORT' after ']'")
            port = _port(rest[1:], raw)
        if not _is_ipv6(host):
            raise _bad(raw, f"{host!r} inside [] is not an IPv6 address")
        return Peer(host, port)
    if text.count(":") > 1:  # a bare IPv6 address: no port possible without brackets
        if not _is_ipv6(text):
            raise _bad(raw, "not an IPv6 address (write [IPV6]:PORT to give a port)")
        return Peer(text, port)
    host, sep, port_text = text.partition(":")
    if sep:
        port = _port(port_text, raw)
    if "%" in host:
        raise _bad(raw, "zone indexes (%dev) are not supported; use a global or unique-local address")
    if not (_is_ipv4(host) or _HOSTNAME.match(host)):
        raise _bad(raw, f"{host!r} is neither an IP address nor a host name")
    return Peer(host, port)


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def _is_ipv6(text: str) -> bool:
    if "%" in text:
        return False
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def is_numeric(host: str) -> bool:
    return _is_ipv4(host) or _is_ipv6(host)


def resolve(peer: Peer, timeout: float) -> str:
    """The first address getaddrinfo gives for a TCP connection; NAME fault if none within `timeout`."""
    if is_numeric(peer.host):
        return peer.host
    answer: dict[str, object] = {}

    def lookup() -> None:
        try:
            answer["infos"] = socket.getaddrinfo(peer.host, peer.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:  # gaierror is an OSError
            answer["error"] = e

    worker = threading.Thread(target=lookup, name="resolve-peer", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise SelftestError(NAME, f"cannot resolve {peer.host!r}: no answer within {timeout:g}s")
    error: Optional[object] = answer.get("error")
    if error is not None:
        reason = getattr(error, "strerror", None) or str(error)
        raise SelftestError(NAME, f"cannot resolve {peer.host!r}: {reason}")
    infos = answer.get("infos") or []
    if not infos:
        raise SelftestError(NAME, f"cannot resolve {peer.host!r}: no address")
    return str(infos[0][4][0])  # type: ignore[index]
