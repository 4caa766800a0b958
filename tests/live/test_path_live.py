"""The path out on the real kernel, inside namespaces: slirp's and libvirt's numbering weighed against the
gateway's link-layer address and the platform, the route MTU read from the kernel, policy routing found through
netlink. The only traffic is one datagram to the peer namespace, to resolve the gateway's address; doctor's own
route lookups use an unsent UDP socket."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

import pytest

from tests.live.nsdoctor import doctor, findings
from tests.netns import Netns, netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns]


def path_findings(doc: dict) -> dict:
    """The path findings worth saying (the ok PATH-DEFAULT-ROUTE carries the evidence; read it on its own)."""
    return {i: f for i, f in findings(doc, "PATH-").items() if f["severity"] != "ok"}


def resolve_gateway(ns: Netns, gateway: str) -> str:
    """One UDP datagram to the gateway's discard port makes the kernel resolve its link-layer address (the
    traffic stays on our veth); returns that address once the neighbour entry is complete (bounded)."""
    ns.run([sys.executable, "-c", "import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            ".sendto(b'x', (sys.argv[1], 9))", gateway])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        cols = ns.ip("neigh", "show", gateway).stdout.split()
        if "lladdr" in cols and cols[-1] in ("REACHABLE", "STALE", "DELAY"):
            return cols[cols.index("lladdr") + 1]
        time.sleep(0.05)
    raise AssertionError(f"{gateway} was not resolved in {ns.name}")


@contextlib.contextmanager
def bridged_gateway(gateway_mac: str) -> Iterator[tuple[Netns, Netns]]:
    """a: 10.0.2.15/24 on gc0, default via 10.0.2.2; b: a plain Linux bridge holding 10.0.2.2, gc1 its port."""
    with netns() as a, netns() as b, veth_pair(a, b, a_addr="10.0.2.15/24", b_addr="10.0.2.16/24"):
        b.ip("addr", "flush", "dev", "gc1")
        b.ip("link", "add", "br0", "address", gateway_mac, "type", "bridge")
        b.ip("link", "set", "gc1", "master", "br0")
        b.ip("addr", "add", "10.0.2.2/24", "dev", "br0")
        b.ip("link", "set", "br0", "up")
        a.ip("route", "add", "default", "via", "10.0.2.2", "dev", "gc0")
        yield a, b


def test_slirp_numbers_on_a_plain_bridge_are_not_called_slirp() -> None:
    """The case that was reported as slirp: 10.0.2.15/24 behind a plain bridge, judged by the numbers alone."""
    with bridged_gateway("ae:13:4f:00:00:01") as (a, _b):
        assert resolve_gateway(a, "10.0.2.2") == "ae:13:4f:00:00:01"
        doc = doctor(a)
    assert path_findings(doc) == {}
    route = findings(doc, "PATH-")["PATH-DEFAULT-ROUTE"]
    assert route["summary"] == "ipv4 default route via 10.0.2.2 on gc0: not slirp (numbers alone are only a hint)"
    slirp = route["evidence"]["nat_ruled_out"]["slirp"]
    assert slirp["gateway_mac"] == "ae:13:4f:00:00:01: not slirp's"
    (v4,) = [r for r in doc["facts"]["path"]["routes"] if r["family"] == "ipv4"]
    assert (v4["source"], v4["mtu"], v4["dev_mtu"], v4["gateway_mac"]) == ("procfs", 1500, 1500, "ae:13:4f:00:00:01")


def test_slirps_gateway_address_is_seen_and_weighed_with_the_platform() -> None:
    """A gateway answering with slirp's link-layer address: slirp only where the platform can run it."""
    with bridged_gateway("52:55:0a:00:02:02") as (a, _b):
        resolve_gateway(a, "10.0.2.2")
        doc = doctor(a)
    virt = doc["facts"]["virt"]
    can = (virt["container"] is not None
           or (virt["hypervisor"] in ("qemu", "kvm", "virtualbox", "unknown") and virt["cloud"] is None))
    every = findings(doc, "PATH-")
    evidence = every["PATH-NAT-SLIRP"]["evidence"] if can else every["PATH-DEFAULT-ROUTE"]["evidence"][
        "nat_ruled_out"]["slirp"]
    assert evidence["gateway_mac"] == "52:55:0a:00:02:02: slirp's"
    assert evidence["platform"].endswith(": can run slirp" if can else ": cannot run slirp")
    assert set(path_findings(doc)) == ({"PATH-NAT-SLIRP"} if can else set())


def test_libvirt_numbers_with_another_router_are_not_libvirt() -> None:
    with netns() as a, netns() as b, veth_pair(a, b, a_addr="192.168.122.50/24", b_addr="192.168.122.1/24"):
        b.ip("link", "set", "gc1", "address", "00:1b:21:3a:4b:5c")
        a.ip("route", "add", "default", "via", "192.168.122.1")
        resolve_gateway(a, "192.168.122.1")
        doc = doctor(a)
    assert path_findings(doc) == {}
    ruled_out = findings(doc, "PATH-")["PATH-DEFAULT-ROUTE"]["evidence"]["nat_ruled_out"]
    assert ruled_out["libvirt's default network"]["gateway_mac"] == "00:1b:21:3a:4b:5c: not libvirt's default network's"


def test_route_mtu_above_the_link_and_its_fix() -> None:
    with netns() as a, netns() as b, veth_pair(a, b, a_addr="10.198.0.2/24", b_addr="10.198.0.1/24"):
        a.ip("route", "add", "default", "via", "10.198.0.1", "mtu", "9000")
        found = path_findings(doctor(a))
        assert set(found) == {"PATH-MTU-MISMATCH"}
        f = found["PATH-MTU-MISMATCH"]
        assert f["severity"] == "warning"
        assert (f["evidence"]["route_mtu"], f["evidence"]["dev_mtu"]) == (9000, 1500)
        fix = f["fix"].split("  (or")[0]
        assert fix == "ip route change default via 10.198.0.1 dev gc0 mtu 1500"
        a.run(fix.split())
        assert path_findings(doctor(a)) == {}
        a.ip("route", "change", "default", "via", "10.198.0.1", "mtu", "1400")
        low = path_findings(doctor(a))["PATH-MTU-MISMATCH"]
        assert low["severity"] == "info" and low["evidence"]["route_mtu"] == 1400


def test_policy_routing_is_found_through_netlink() -> None:
    pytest.importorskip("pyroute2", reason="pyroute2 is not installed")
    with netns() as a, netns() as b, veth_pair(a, b, a_addr="10.0.2.15/24", b_addr="10.0.2.2/24"):
        # No default in the main table (what /proc/net/route shows); rules send traffic to table 100.
        a.ip("route", "add", "default", "via", "10.0.2.2", "dev", "gc0", "table", "100")
        a.ip("rule", "add", "pref", "1000", "lookup", "100")
        doc = doctor(a)
        (v4,) = [r for r in doc["facts"]["path"]["routes"] if r["family"] == "ipv4"]
        assert (v4["source"], v4["table"], v4["dev"], v4["gateway"]) == ("netlink", "100", "gc0", "10.0.2.2")
        assert set(findings(doc, "PATH-")) == {"PATH-DEFAULT-ROUTE"}  # slirp's numbers, nothing else of slirp's


def test_no_default_route() -> None:
    with netns() as a, netns() as b, veth_pair(a, b):
        doc = doctor(a)
        assert doc["facts"]["path"]["routes"] == []
        assert set(path_findings(doc)) == {"PATH-NO-DEFAULT-ROUTE"}


def wait_failed(ns: Netns, family: str, gateway: str) -> None:
    """Until the gateway's neighbour entry is FAILED: the kernel gives up after its probes (about 3 s)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if ns.ip(family, "neigh", "show", gateway).stdout.split()[-1:] == ["FAILED"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"{gateway} did not become FAILED: {ns.ip(family, 'neigh', 'show').stdout}")


SEND_OFF_LINK = ("import socket, sys; fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET; "
                 "socket.socket(fam, socket.SOCK_DGRAM).sendto(b'x', (sys.argv[1], 9))")


def test_a_default_gateway_nobody_answers_is_reported_for_ipv4_and_ipv6() -> None:
    """Issue 19: an IPv6 default route whose gateway's neighbour entry is FAILED was reported as
    PATH-DEFAULT-ROUTE ok. Here nobody holds either gateway address; one datagram off-link makes the kernel
    try each, and doctor reports both."""
    with netns() as a, netns() as b, veth_pair(a, b, a_addr="10.199.7.1/24", b_addr="10.199.7.2/24"):
        a.ip("-6", "addr", "add", "fd99:7::1/64", "dev", "gc0", "nodad")
        b.ip("-6", "addr", "add", "fd99:7::2/64", "dev", "gc1", "nodad")
        a.ip("route", "add", "default", "via", "10.199.7.9", "dev", "gc0")
        a.ip("-6", "route", "add", "default", "via", "fd99:7::9", "dev", "gc0")
        assert path_findings(doctor(a)) == {}  # nothing tried the gateways yet: no entry, nothing to say
        for family, gateway, off_link in (("-4", "10.199.7.9", "198.51.100.7"), ("-6", "fd99:7::9", "2001:db8::7")):
            a.run([sys.executable, "-c", SEND_OFF_LINK, off_link])
            wait_failed(a, family, gateway)
        doc = doctor(a)
        found = [f for f in doc["findings"] if f["id"] == "PATH-GATEWAY-UNREACHABLE"]
        assert sorted((f["evidence"]["family"], f["evidence"]["gateway"]) for f in found) == [
            ("ipv4", "10.199.7.9"), ("ipv6", "fd99:7::9")]
        assert all(f["severity"] == "warning" and f["subject"] == "gc0" and f["fix"] == "" for f in found)
        assert "PATH-DEFAULT-ROUTE" not in findings(doc, "PATH-")
        routes = {r["family"]: r["gateway_state"] for r in doc["facts"]["path"]["routes"]}
        assert routes == {"ipv4": "failed", "ipv6": "failed"}
        # once the gateway answers (b takes the address), the route is ok again
        b.ip("addr", "add", "10.199.7.9/24", "dev", "gc1")
        resolve_gateway(a, "10.199.7.9")
        doc = doctor(a)
        assert [f["evidence"]["family"] for f in doc["findings"] if f["id"] == "PATH-GATEWAY-UNREACHABLE"] == ["ipv6"]
