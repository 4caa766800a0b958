"""The path out on fake trees: /proc/net/route and ipv6_route parsing, the lookups' roles, and the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from guestcheck.checks import path as check
from guestcheck.checks.path import FINDINGS
from guestcheck.collect.path import collect_path, parse_ipv4_routes, parse_ipv6_routes
from guestcheck.facts import Facts, Route
from guestcheck.facts import Path as PathFacts
from guestcheck.judge import judged_facts
from tests.fakemachine import FakeMachine
from tests.judged import with_recorded

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


# /proc/net/arp as the kernel prints it, with slirp's gateway resolved (52:55 + 10.0.2.2)
ARP_SLIRP = ("IP address       HW type     Flags       HW address            Mask     Device\n"
             "10.0.2.2         0x1         0x2         52:55:0a:00:02:02     *        gcxa\n"
             "10.0.2.9         0x1         0x0         00:00:00:00:00:00     *        gcxa\n")


def test_collect_facts_fills_path(tmp_path: Path) -> None:
    m = tree(tmp_path)
    m.set_dmi(sys_vendor="QEMU", product_name="Standard PC (Q35 + ICH9, 2009)")
    m.write("proc/net/arp", ARP_SLIRP)
    m.write("etc/resolv.conf", "# from DHCP\nnameserver 10.0.2.3\n")
    m.add_nic("gcxa", driver="virtio_net", bus="virtio")
    facts = m.collect()
    assert facts.path is not None and facts.path.routes[0].gateway == "10.0.2.2"
    assert facts.path.routes[0].gateway_mac == "52:55:0a:00:02:02" and facts.path.nameservers == ["10.0.2.3"]
    assert "PATH-NAT-SLIRP" in ids(judged_facts(facts))  # the platform (QEMU) is the judging step's verdict


def test_resolved_stub_gives_its_upstream_servers_and_incomplete_neighbours_no_mac(tmp_path: Path) -> None:
    m = tree(tmp_path)
    m.write("proc/net/arp", ARP_SLIRP.replace("0x2 ", "0x0 "))
    m.write("etc/resolv.conf", "nameserver 127.0.0.53\noptions edns0\n")
    m.write("run/systemd/resolve/resolv.conf", "nameserver 10.0.2.3\n")
    path = collect_path(m.roots, live=False, netlink=no_netlink)
    assert path.routes[0].gateway_mac is None and path.nameservers == ["10.0.2.3"]


# --- checks -------------------------------------------------------------------------------------------


def ids(facts: Facts) -> list[str]:
    """The ids of what is worth saying (the ok route finding is the evidence channel, tested on its own)."""
    return [f.id for f in check.run(*with_recorded(facts)) if f.severity.label != "ok"]


def facts_with(*routes: Route, hypervisor: Optional[str] = "kvm", nameservers: tuple[str, ...] = (),
               cloud: Optional[str] = None, container: Optional[str] = None) -> Facts:
    facts = Facts(path=PathFacts(list(routes), nameservers=list(nameservers)))
    facts.virt.hypervisor, facts.virt.cloud, facts.virt.container = hypervisor, cloud, container
    return facts


def slirp_route(mac: Optional[str] = "52:55:0a:00:02:02", networks=("10.0.2.0/24",)) -> Route:
    return Route("ipv4", "ens3", "10.0.2.2", networks=list(networks), src_address="10.0.2.15", gateway_mac=mac)


def test_slirp_recognised_by_numbers_and_behaviour() -> None:
    (f,) = [f for f in check.run(*with_recorded(facts_with(slirp_route()))) if f.severity.label != "ok"]
    assert f.id == "PATH-NAT-SLIRP" and f.severity.label == "warning" and "slirp" in f.summary
    assert "-netdev tap" in f.fix and "SR-IOV" in f.fix
    assert FINDINGS["PATH-NAT-SLIRP"].fix_on == FINDINGS["PATH-NAT-LIBVIRT"].fix_on == "host"
    assert f.evidence["gateway_mac"] == "52:55:0a:00:02:02: slirp's"
    assert f.evidence["platform"] == "kvm: can run slirp"
    assert ids(facts_with(slirp_route(networks=()))) == ["PATH-NAT-SLIRP"]  # by the source address
    # before the gateway was reached, DHCP's resolver is slirp's
    assert ids(facts_with(slirp_route(mac=None), nameservers=("10.0.2.3",))) == ["PATH-NAT-SLIRP"]
    vbox = check.run(*with_recorded(facts_with(slirp_route("52:54:00:12:35:02"), hypervisor="virtualbox")))[0]
    assert "VirtualBox NAT" in vbox.summary and "bridged" in vbox.fix
    # rootless containers: slirp4netns uses slirp's numbers, whatever runs the machine
    assert ids(facts_with(slirp_route(), hypervisor="firecracker", container="podman")) == ["PATH-NAT-SLIRP"]
    # 10.0.2.2 as a gateway on some other network is not slirp
    assert ids(facts_with(Route("ipv4", "eth0", "10.0.2.2", networks=["10.0.0.0/16"], src_address="10.0.9.9",
                                gateway_mac="52:55:0a:00:02:02"))) == []


def test_slirp_numbers_alone_are_only_a_hint() -> None:
    """10.0.2.15/24 on a plain bridge of a Firecracker VM, the gateway an ordinary bridge: no NAT finding."""
    bridge = slirp_route(mac="ae:13:4f:00:00:01")
    (ok,) = check.run(*with_recorded(facts_with(bridge, hypervisor="firecracker")))
    assert (ok.id, ok.severity.label) == ("PATH-DEFAULT-ROUTE", "ok")
    assert ok.summary == "ipv4 default route via 10.0.2.2 on ens3: not slirp (numbers alone are only a hint)"
    assert ok.evidence["nat_ruled_out"]["slirp"] == {
        "hint": "default route via 10.0.2.2 on 10.0.2.0/24: slirp's numbers",
        "gateway_mac": "ae:13:4f:00:00:01: not slirp's",
        "platform": "firecracker: cannot run slirp"}
    # each piece of evidence alone is not enough
    assert ids(facts_with(slirp_route(), hypervisor="firecracker")) == []  # slirp's MAC, a platform without it
    assert ids(facts_with(slirp_route(), hypervisor="kvm", cloud="amazon")) == []  # no slirp in a cloud
    assert ids(facts_with(bridge, hypervisor="qemu")) == []  # a platform with it, another gateway
    assert ids(facts_with(slirp_route(mac=None), nameservers=("192.0.2.53",))) == []  # nothing corroborates


def test_libvirt_default_network() -> None:
    route = Route("ipv4", "enp1s0", "192.168.122.1", networks=["192.168.122.0/24"], gateway_mac="52:54:00:8c:1a:2b")
    (f,) = [f for f in check.run(*with_recorded(facts_with(route))) if f.severity.label != "ok"]
    assert (f.id, f.severity.label) == ("PATH-NAT-LIBVIRT", "info")
    assert ids(facts_with(Route("ipv4", "eth0", "192.168.1.1", networks=["192.168.1.0/24"]))) == []
    other_router = Route("ipv4", "enp1s0", "192.168.122.1", networks=["192.168.122.0/24"],
                         gateway_mac="00:1b:21:3a:4b:5c")
    assert ids(facts_with(other_router)) == []


def test_route_mtu_against_interface_mtu() -> None:
    def mismatches(route: Route) -> list:
        return [f for f in check.run(*with_recorded(facts_with(route))) if f.id == "PATH-MTU-MISMATCH"]

    high = mismatches(Route("ipv4", "eth0", "192.168.1.1", mtu=9000, dev_mtu=1500))
    assert [f.severity.label for f in high] == ["warning"]
    assert high[0].fix == "ip route change default via 192.168.1.1 dev eth0 mtu 1500"  # the command alone
    assert high[0].evidence["or_instead"] == "if the whole link carries 9000: ip link set eth0 mtu 9000"
    low = mismatches(Route("ipv6", "eth0", "fe80::1", mtu=1280, dev_mtu=1500))
    assert [f.severity.label for f in low] == ["info"]
    assert low[0].fix == "ip -6 route change default via fe80::1 dev eth0 mtu 1500"
    odd = mismatches(Route("ipv4", "eth0;reboot", "192.168.1.1", mtu=9000, dev_mtu=1500))
    assert odd[0].fix == "ip route change default via 192.168.1.1 dev 'eth0;reboot' mtu 1500"
    assert ids(facts_with(Route("ipv4", "eth0", "192.168.1.1", mtu=1500, dev_mtu=1500))) == []
    assert ids(facts_with(Route("ipv4", "eth0", "192.168.1.1", mtu=None, dev_mtu=1500))) == []


def test_old_facts_without_path_judge_to_nothing() -> None:
    assert check.run(*with_recorded(Facts())) == []


def test_route_mtu_capped_at_ip_max_mtu_is_no_mismatch() -> None:
    assert ids(facts_with(Route("ipv4", "lo", None, mtu=65535, dev_mtu=65536))) == []


def test_no_routing_table_in_procfs_is_unknown_not_no_route(tmp_path: Path) -> None:
    assert collect_path(FakeMachine(tmp_path).roots, live=False) is None


# --- a gateway that does not answer (issue 19: an IPv6 default via a FAILED neighbour was reported ok) ---------


def test_gateway_states_come_from_the_neighbour_table_of_the_routes_device(tmp_path: Path) -> None:
    m = tree(tmp_path, ipv6=IPV6_DEFAULT)
    m.write("sys/class/net/gcxa/ifindex", "2\n")
    m.write("sys/class/net/eth0/ifindex", "3\n")
    tables = {"ipv4": {(2, "10.0.2.2"): "reachable"},
              "ipv6": {(3, "fe80::1"): "failed", (2, "fe80::1"): "reachable"}}  # same address, another link
    path = collect_path(m.roots, live=False, netlink=no_netlink, neighbours=lambda family: tables[family])
    assert [(r.family, r.gateway, r.gateway_state) for r in path.routes] == [
        ("ipv4", "10.0.2.2", "reachable"), ("ipv6", "fe80::1", "failed")]


def test_a_neighbour_table_that_cannot_be_read_is_a_note(tmp_path: Path) -> None:
    m = tree(tmp_path)
    m.write("sys/class/net/gcxa/ifindex", "2\n")

    def refused(family: str) -> dict:
        raise PermissionError(1, "Operation not permitted")

    path = collect_path(m.roots, live=False, netlink=no_netlink, neighbours=refused)
    assert path.routes[0].gateway_state is None
    assert path.notes == ["ipv4: the neighbour table could not be read (Operation not permitted)"]


def test_a_failed_gateway_is_reported_for_either_family_instead_of_an_ok_route() -> None:
    for family, gateway, six in (("ipv4", "192.0.2.1", ""), ("ipv6", "fd00::1", "-6 ")):
        route = Route(family, "eth0", gateway, gateway_state="failed")
        (f,) = check.run(*with_recorded(facts_with(route)))
        assert (f.id, f.severity.label, f.subject, f.fix, f.fix_on) == (
            "PATH-GATEWAY-UNREACHABLE", "warning", "eth0", "", "")
        assert f.summary.startswith(f"{family} default gateway {gateway} on eth0 does not answer (neighbour FAILED)")
        assert f.evidence["look"][:2] == [f"ip {six}route show default", f"ip {six}neigh show dev eth0"]
    for state in ("reachable", "stale", "incomplete", None):  # resolving, or not tried lately: not judged
        assert ids(facts_with(Route("ipv6", "eth0", "fd00::1", gateway_state=state))) == []
    assert FINDINGS["PATH-GATEWAY-UNREACHABLE"].fix_on == ""


def test_kernel_neighbour_answers_are_parsed_from_rtnetlink(monkeypatch) -> None:
    import socket
    import struct

    from guestcheck.collect import path as collect
    from guestcheck.rtnetlink import RTA

    def neigh(family: int, ifindex: int, state: int, address: bytes) -> bytes:
        attr = RTA.pack(RTA.size + len(address), 1) + address
        return collect.NDMSG.pack(family, ifindex, state, 0, 1) + attr + b"\0" * (-len(attr) % 4)

    answers = [(28, neigh(socket.AF_INET6, 4, 0x20, socket.inet_pton(socket.AF_INET6, "fd00::1"))),
               (28, neigh(socket.AF_INET6, 4, 0x04, socket.inet_pton(socket.AF_INET6, "fe80::1"))),
               (28, neigh(socket.AF_INET, 4, 0x02, socket.inet_aton("10.0.0.1"))),  # another family: skipped
               (28, b"\x0a" * 5)]  # truncated: skipped
    monkeypatch.setattr(collect, "dump", lambda kind, header: answers)
    assert collect.kernel_neighbours("ipv6") == {(4, "fd00::1"): "failed", (4, "fe80::1"): "stale"}
    assert struct.calcsize("=BxxxiHBB") == collect.NDMSG.size == 12  # struct ndmsg
