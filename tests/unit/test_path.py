"""The path out on fake trees: /proc/net/route and ipv6_route parsing, the lookups' roles, and the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from guestcheck.checks import path as check
from guestcheck.collect.path import collect_path, parse_ipv4_routes, parse_ipv6_routes
from guestcheck.facts import Facts, Route
from guestcheck.facts import Path as PathFacts
from tests.fakemachine import FakeMachine

# Captured in a network namespace: 10.0.2.15/24 on gcxa, `default via 10.0.2.2 dev gcxa mtu 1400`
# (the route's mtu is not in /proc/net/route: its "MTU" column is advmss + 40).
ROUTE_SLIRP = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
    "                                                       \n"
    "gcxa\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0"
    "                                                                               \n"
    "gcxa\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0"
    "                                                                               \n"
)
IPV6_LINK_LOCAL_ONLY = (
    "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000001 00000000 00000001     gcxa\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
    "ff000000000000000000000000000000 08 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000002 00000000 00000001     gcxa\n"
)
# An RA-learned IPv6 default via a link-local router, and the prefix route.
IPV6_DEFAULT = (
    "20010db8000100000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fe800000000000000000000000000001 00000400 00000001 00000000 00450003     eth0\n"
    "20010db8000100000000000000000015 80 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000000 00000002 00000000 80200001     eth0\n"
)


def tree(tmp_path: Path, route: str = ROUTE_SLIRP, ipv6: str = IPV6_LINK_LOCAL_ONLY,
         mtus: Optional[dict[str, int]] = None) -> FakeMachine:
    m = FakeMachine(tmp_path)
    m.write("proc/net/route", route)
    m.write("proc/net/ipv6_route", ipv6)
    for dev, mtu in (mtus or {"gcxa": 1500, "eth0": 1500}).items():
        m.write(f"sys/class/net/{dev}/mtu", f"{mtu}\n")
    return m


def test_parse_ipv4_routes_from_a_real_capture() -> None:
    default, connected = parse_ipv4_routes(ROUTE_SLIRP)
    assert (default.dev, default.gateway, default.plen, default.metric) == ("gcxa", "10.0.2.2", 0, 0)
    assert (connected.cidr(), connected.gateway) == ("10.0.2.0/24", None)
    assert connected.contains("10.0.2.15") and not connected.contains("10.0.3.1")


def test_parse_ipv6_routes_skips_reject_local_and_multicast() -> None:
    assert [r.cidr() for r in parse_ipv6_routes(IPV6_LINK_LOCAL_ONLY)] == ["fe80::/64"]
    prefix, default = parse_ipv6_routes(IPV6_DEFAULT)
    assert prefix.cidr() == "2001:db8:1::/64"
    assert (default.plen, default.gateway, default.metric, default.dev) == (0, "fe80::1", 1024, "eth0")


def test_procfs_only_on_a_fake_tree(tmp_path: Path) -> None:
    m = tree(tmp_path)
    path = collect_path(m.roots, live=False)
    (v4,) = path.routes
    assert (v4.family, v4.dev, v4.gateway, v4.source, v4.networks) == ("ipv4", "gcxa", "10.0.2.2", "procfs",
                                                                       ["10.0.2.0/24"])
    assert v4.mtu is None and v4.dev_mtu == 1500


def no_netlink(family: str, destination: str) -> Any:
    raise AssertionError("netlink must not be asked when procfs and the kernel lookup agree")


def test_kernel_lookup_adds_route_mtu_and_source_without_netlink(tmp_path: Path) -> None:
    m = tree(tmp_path, ipv6=IPV6_DEFAULT)
    asked = []

    def probe(family: str, destination: str) -> Any:
        asked.append(destination)
        return (1400, "10.0.2.15") if family == "ipv4" else (1500, "2001:db8:1::15")

    def addresses(family: str, dev: str) -> list[str]:
        return ["10.0.2.15"] if family == "ipv4" else ["2001:db8:1::15", "fe80::15"]

    path = collect_path(m.roots, live=False, probe=probe, addresses=addresses, netlink=no_netlink)
    v4, v6 = path.routes
    assert (v4.mtu, v4.dev_mtu, v4.src_address, v4.source) == (1400, 1500, "10.0.2.15", "procfs")
    assert (v6.gateway, v6.mtu, v6.networks) == ("fe80::1", 1500, ["2001:db8:1::/64"])
    assert asked == ["192.0.2.1", "2001:db8::1"]


def test_lookup_address_avoids_networks_the_machine_sits_on(tmp_path: Path) -> None:
    # This very machine numbers its own link from TEST-NET-1: 192.0.2.0/24 dev eth0.
    route = ROUTE_SLIRP.replace("0002000A", "000200C0").replace("0202000A", "010200C0").replace("gcxa", "eth0")
    m = tree(tmp_path, route=route)
    asked = []
    collect_path(m.roots, live=False, probe=lambda fam, dst: asked.append(dst), netlink=no_netlink)
    assert asked == ["198.51.100.1", "2001:db8::1"]


def test_policy_routing_asks_netlink(tmp_path: Path) -> None:
    # wg-quick style: main has a default via gcxa, but rules send everything through wg0 in table 51820.
    m = tree(tmp_path, mtus={"gcxa": 1500, "wg0": 1420})
    answers = {"dev": "wg0", "gateway": None, "table": 51820, "prefsrc": None, "metric": None}
    path = collect_path(m.roots, live=False, probe=lambda fam, dst: (1420, "10.8.0.2") if fam == "ipv4" else None,
                        addresses=lambda fam, dev: ["10.0.2.15"], netlink=lambda fam, dst: (answers, ""))
    (v4,) = path.routes
    assert (v4.dev, v4.table, v4.source, v4.mtu, v4.dev_mtu) == ("wg0", "51820", "netlink", 1420, 1420)


def test_no_main_default_and_no_pyroute2_still_counts_a_route(tmp_path: Path) -> None:
    m = tree(tmp_path, route=ROUTE_SLIRP.splitlines(keepends=True)[0] + ROUTE_SLIRP.splitlines(keepends=True)[2])
    path = collect_path(m.roots, live=False, probe=lambda fam, dst: (1500, "10.0.2.15") if fam == "ipv4" else None,
                        netlink=lambda fam, dst: (None, "pyroute2 is not installed (python3-pyroute2)"))
    (v4,) = path.routes
    assert (v4.source, v4.dev, v4.table) == ("probe", None, "?")
    assert "pyroute2 is not installed" in path.notes[0]
    assert "PATH-NO-DEFAULT-ROUTE" not in ids(Facts(path=path))


def test_no_default_route_at_all(tmp_path: Path) -> None:
    m = tree(tmp_path, route=ROUTE_SLIRP.splitlines(keepends=True)[0])
    path = collect_path(m.roots, live=False, probe=lambda fam, dst: None, netlink=no_netlink)
    assert path.routes == []
    assert ids(Facts(path=path)) == ["PATH-NO-DEFAULT-ROUTE"]


def test_collect_facts_fills_path(tmp_path: Path) -> None:
    m = tree(tmp_path)
    m.add_nic("gcxa", driver="virtio_net", bus="virtio")
    facts = m.collect()
    assert facts.path is not None and facts.path.routes[0].gateway == "10.0.2.2"
    assert "PATH-NAT-SLIRP" in ids(facts)


# --- checks -------------------------------------------------------------------------------------------


def ids(facts: Facts) -> list[str]:
    return [f.id for f in check.run(facts)]


def facts_with(*routes: Route, hypervisor: Optional[str] = "kvm") -> Facts:
    facts = Facts(path=PathFacts(list(routes)))
    facts.virt.hypervisor = hypervisor
    return facts


def test_slirp_recognised_by_gateway_and_network() -> None:
    slirp = Route("ipv4", "ens3", "10.0.2.2", networks=["10.0.2.0/24"], src_address="10.0.2.15")
    (f,) = check.run(facts_with(slirp))
    assert f.id == "PATH-NAT-SLIRP" and f.severity.label == "warning" and "slirp" in f.summary
    assert "-netdev tap" in f.fix and "SR-IOV" in f.fix
    by_address = Route("ipv4", "ens3", "10.0.2.2", networks=[], src_address="10.0.2.15")
    assert ids(facts_with(by_address)) == ["PATH-NAT-SLIRP"]
    vbox = check.run(facts_with(slirp, hypervisor="virtualbox"))[0]
    assert "VirtualBox NAT" in vbox.summary and "bridged" in vbox.fix
    # 10.0.2.2 as a gateway on some other network is not slirp
    assert ids(facts_with(Route("ipv4", "eth0", "10.0.2.2", networks=["10.0.0.0/16"], src_address="10.0.9.9"))) \
        == []


def test_libvirt_default_network() -> None:
    route = Route("ipv4", "enp1s0", "192.168.122.1", networks=["192.168.122.0/24"])
    (f,) = check.run(facts_with(route))
    assert (f.id, f.severity.label) == ("PATH-NAT-LIBVIRT", "info")
    assert ids(facts_with(Route("ipv4", "eth0", "192.168.1.1", networks=["192.168.1.0/24"]))) == []


def test_route_mtu_against_interface_mtu() -> None:
    high = check.run(facts_with(Route("ipv4", "eth0", "192.168.1.1", mtu=9000, dev_mtu=1500)))
    assert [(f.id, f.severity.label) for f in high] == [("PATH-MTU-MISMATCH", "warning")]
    assert "ip route change default via 192.168.1.1 dev eth0 mtu 1500" in high[0].fix
    low = check.run(facts_with(Route("ipv6", "eth0", "fe80::1", mtu=1280, dev_mtu=1500)))
    assert [(f.id, f.severity.label) for f in low] == [("PATH-MTU-MISMATCH", "info")]
    assert "ip -6 route change default via fe80::1 dev eth0 mtu 1500" in low[0].fix
    assert ids(facts_with(Route("ipv4", "eth0", "192.168.1.1", mtu=1500, dev_mtu=1500))) == []
    assert ids(facts_with(Route("ipv4", "eth0", "192.168.1.1", mtu=None, dev_mtu=1500))) == []


def test_old_facts_without_path_judge_to_nothing() -> None:
    assert check.run(Facts()) == []


def test_route_mtu_capped_at_ip_max_mtu_is_no_mismatch() -> None:
    assert ids(facts_with(Route("ipv4", "lo", None, mtu=65535, dev_mtu=65536))) == []


def test_no_routing_table_in_procfs_is_unknown_not_no_route(tmp_path: Path) -> None:
    assert collect_path(FakeMachine(tmp_path).roots, live=False) is None
