"""guestcheck/netaddr.py: the one reading of an address's family, for sockets and for text, and the CIDR test."""

from __future__ import annotations

import socket

from guestcheck.netaddr import bracketed, family_of, in_network


def test_an_address_with_a_colon_is_ipv6_for_sockets_and_in_brackets_before_a_port():
    assert family_of("10.0.0.2") == socket.AF_INET and bracketed("10.0.0.2") == "10.0.0.2"
    assert family_of("fd00::2") == socket.AF_INET6 and bracketed("fd00::2") == "[fd00::2]"
    assert family_of("::ffff:10.0.0.2") == socket.AF_INET6


def test_in_network_for_both_families_and_nothing_for_what_does_not_parse():
    assert in_network("10.1.2.3", "10.0.0.0/8") and not in_network("11.1.2.3", "10.0.0.0/8")
    assert in_network("fd00::5", "fd00::/8") and not in_network("fe80::1", "fd00::/8")
    assert not in_network("10.1.2.3", "fd00::/8") and not in_network("x", "10.0.0.0/8")
    assert not in_network("10.1.2.3", "10.0.0.0/33") and not in_network(None, "10.0.0.0/8")
