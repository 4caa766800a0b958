"""The path out on the real kernel, inside namespaces: slirp's and libvirt's numbering recognised, the route
MTU read from the kernel, policy routing found through netlink. No traffic is sent: the gateway is the
peer namespace, and the route lookups use an unsent UDP socket."""

from __future__ import annotations

import pytest

from tests.live.nsdoctor import doctor, findings
from tests.netns import netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns]


def path_findings(doc: dict) -> dict:
    return findings(doc, "PATH-")


def test_slirp_numbering_is_recognised() -> None:
    with netns() as a, netns() as b, veth_pair(a, b, a_addr="10.0.2.15/24", b_addr="10.0.2.2/24"):
        a.ip("route", "add", "default", "via", "10.0.2.2", "dev", "gc0")
        doc = doctor(a)
        found = path_findings(doc)
        assert set(found) == {"PATH-NAT-SLIRP"}
        f = found["PATH-NAT-SLIRP"]
        assert (f["subject"], f["severity"]) == ("gc0", "warning")
        assert f["evidence"]["networks"] == ["10.0.2.0/24"] and f["evidence"]["src_address"] == "10.0.2.15"
        (v4,) = [r for r in doc["facts"]["path"]["routes"] if r["family"] == "ipv4"]
        assert (v4["source"], v4["mtu"], v4["dev_mtu"]) == ("procfs", 1500, 1500)
        assert doc["status"] == "warning"


def test_libvirt_default_network_is_recognised() -> None:
    with netns() as a, netns() as b, veth_pair(a, b, a_addr="192.168.122.50/24", b_addr="192.168.122.1/24"):
        a.ip("route", "add", "default", "via", "192.168.122.1")
        found = path_findings(doctor(a))
        assert set(found) == {"PATH-NAT-LIBVIRT"} and found["PATH-NAT-LIBVIRT"]["severity"] == "info"


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
        assert set(path_findings(doc)) == {"PATH-NAT-SLIRP"}


def test_no_default_route() -> None:
    with netns() as a, netns() as b, veth_pair(a, b):
        doc = doctor(a)
        assert doc["facts"]["path"]["routes"] == []
        assert set(path_findings(doc)) == {"PATH-NO-DEFAULT-ROUTE"}
