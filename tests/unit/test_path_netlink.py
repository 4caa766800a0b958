"""The pyroute2 adapter against this machine's real kernel (read-only, no root): Debian's 0.7.2 here, the
newest PyPI release in CI's version matrix. Skipped only where pyroute2 is not installed."""

from __future__ import annotations

import socket

import pytest

from guestcheck.collect.path import kernel_route_probe, netlink_route

pytest.importorskip("pyroute2", reason="pyroute2 is not installed")


def test_route_get_names_loopback_for_a_local_address() -> None:
    answer, problem = netlink_route("ipv4", "127.0.0.1")
    assert problem == ""
    assert answer is not None and answer["dev"] == "lo"
    assert answer["prefsrc"] == "127.0.0.1"


def test_route_get_agrees_with_the_kernel_lookup_of_the_socket() -> None:
    probed = kernel_route_probe("ipv4", "127.0.0.2")
    assert probed is not None
    mtu, src = probed
    answer, _ = netlink_route("ipv4", "127.0.0.2")
    assert answer is not None and answer["dev"] == "lo"
    assert src == "127.0.0.1"
    with open("/sys/class/net/lo/mtu") as f:
        assert mtu == min(int(f.read()), 65535)  # IP_MTU is capped at IP_MAX_MTU; lo has 65536


def test_ipv6_route_get_or_a_reason() -> None:
    answer, problem = netlink_route("ipv6", "::1")
    if not socket.has_ipv6 or problem:
        assert answer is None and problem  # IPv6 disabled: a reason, never an exception
    else:
        assert answer is not None and answer["dev"] == "lo"
