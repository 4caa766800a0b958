"""Tunnels: found in sysfs, completed by (injected) netlink details, overheads, the MTU and checksum checks."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from guestcheck.checks import catalog
from guestcheck.checks import tunnels as check
from guestcheck.collect.tunnels import collect_tunnels, gre_options, overhead
from guestcheck.facts import Facts, Feature, Host, Nic, Tunnel, facts_from_dict
from guestcheck.findings import Severity
from guestcheck.kernelversion import kernel_version
from tests.fakemachine import FakeMachine
from tests.judged import with_recorded


@pytest.mark.parametrize("kind,family,expected", [
    ("vxlan", "ipv4", 50), ("vxlan", "ipv6", 70),
    ("geneve", "ipv4", 50), ("geneve", "ipv6", 70),
    ("gre", None, 24), ("gretap", None, 38), ("ipip", None, 20), ("sit", None, 20),
    ("ip6tnl", None, 48),  # 40 + the encapsulation-limit option the kernel adds by default
    ("wireguard", "ipv4", 60), ("wireguard", "ipv6", 80),
])
def test_overheads(kind, family, expected):
    assert overhead(kind, family)[0] == expected


def test_overhead_options():
    assert overhead("ip6tnl", None, encap_limit=False) == (40, "40 IPv6")
    assert overhead("gre", None, gre_flags=0x2000)[0] == 28  # key, as the kernel sends it (big-endian)
    assert overhead("gretap", None, gre_flags=0x0020)[0] == 42  # the same flag read in host order
    assert overhead("ip6gretap", None, gre_flags=0xB000)[0] == 40 + 4 + 12 + 8 + 14
    assert overhead("vxlan", None) == (None, "outer address family not known")
    assert gre_options(0) == 0 and gre_options(0x0007) == 0


def fake(tmp_path: Path) -> FakeMachine:
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="virtio_net", mtu=1400, ifindex=2)
    m.add_nic("vx0", bus=None, uevent_devtype="vxlan", mtu=1450, ifindex=3)
    m.symlink("sys/class/net/vx0/lower_eth0", str(tmp_path / "sys/class/net/eth0"))
    m.add_nic("tunl1", bus=None, link_type=768, mtu=1380, ifindex=4, flags=0x1091)
    m.add_nic("wg0", bus=None, uevent_devtype="wireguard", link_type=65534, mtu=1420, ifindex=5)
    return m


def test_sysfs_alone_finds_them_and_the_recorded_lower(tmp_path):
    tunnels = {t.name: t for t in collect_tunnels(fake(tmp_path).roots)}
    assert sorted(tunnels) == ["tunl1", "vx0", "wg0"]
    vx = tunnels["vx0"]
    assert (vx.kind, vx.family, vx.lower, vx.lower_mtu, vx.lower_source, vx.overhead) == (
        "vxlan", "ipv4", "eth0", 1400, "sysfs", 50)
    assert (tunnels["tunl1"].kind, tunnels["tunl1"].overhead, tunnels["tunl1"].lower) == ("ipip", 20, None)
    assert tunnels["wg0"].overhead == 60 and "no peer endpoint" in tunnels["wg0"].notes[0]


def test_netlink_details_fill_in_remote_family_and_route_lower(tmp_path):
    m = fake(tmp_path)
    asked = []

    def netlink(names):
        asked.append(names)
        return {
            "vx0": {"kind": "vxlan", "remote": "fd00::2", "lower": "eth0", "lower_mtu": 1400, "lower_source": "link"},
            "wg0": {"kind": "wireguard", "family": "ipv6", "remote": "fd00::9", "lower": "eth0", "lower_mtu": 1400,
                    "lower_source": "route"},
            "gt0": {"kind": "gretap", "mtu": 1462, "admin_up": True, "gre_flags": 0x2000, "lower": "eth0",
                    "lower_mtu": 1400, "lower_source": "route"},
        }, ""

    tunnels = {t.name: t for t in collect_tunnels(m.roots, netlink=netlink)}
    assert asked == [["tunl1", "vx0", "wg0"]]
    assert (tunnels["vx0"].family, tunnels["vx0"].overhead, tunnels["vx0"].source) == ("ipv6", 70, "netlink")
    assert (tunnels["wg0"].overhead, tunnels["wg0"].lower_source) == (80, "route")
    assert (tunnels["gt0"].kind, tunnels["gt0"].overhead) == ("gretap", 42)  # netlink-only: no DEVTYPE in sysfs
    assert tunnels["tunl1"].source == "sysfs"


def test_no_tunnel_no_netlink(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="virtio_net")

    def netlink(names):
        raise AssertionError("netlink asked without a tunnel")

    assert collect_tunnels(m.roots, netlink=netlink) == []


def test_mtu_finding_with_the_mtu_that_fits(tmp_path):
    facts = fake(tmp_path).collect()
    found = {(f.id, f.subject): f for f in check.run(*with_recorded(facts))}
    f = found[("TUNNEL-MTU", "vx0")]
    assert f.severity == Severity.WARNING
    assert f.fix == "ip link set dev vx0 mtu 1350"
    assert (f.evidence["lower"], f.evidence["lower_mtu"], f.evidence["overhead"], f.evidence["fits"]) == (
        "eth0", 1400, 50, 1350)
    # no lower device known: not judged (the ipip without a link, wireguard without peers)
    assert ("TUNNEL-MTU", "tunl1") not in found and ("TUNNEL-MTU", "wg0") not in found
    again = facts_from_dict(json.loads(json.dumps(facts.to_dict())))
    assert again.tunnels == facts.tunnels


def test_mtu_that_fits_is_quiet():
    t = Tunnel("vx0", "vxlan", mtu=1350, lower="eth0", lower_mtu=1400, overhead=50)
    assert check.run(*with_recorded(Facts(tunnels=[t]))) == []


def test_hostile_name_is_quoted():
    name = "vx;rm -rf /"
    t = Tunnel(name, "vxlan", mtu=1500, lower="eth0", lower_mtu=1500, overhead=50)
    [f] = check.run(*with_recorded(Facts(tunnels=[t])))
    assert f.fix == f"ip link set dev {shlex.quote(name)} mtu 1450"


def csum_facts(kernel: str, name: str = "flannel.1", on: bool = True) -> Facts:
    nic = Nic(name, features={"tx-checksum-ip-generic": Feature(on, False)})
    return Facts(host=Host(kernel=kernel), nics=[nic], tunnels=[Tunnel(name, "vxlan", mtu=1450)])


def test_vxlan_checksum_offload_by_kernel_version():
    [f] = check.run(*with_recorded(csum_facts("5.4.0-150-generic")))
    assert (f.id, f.severity) == ("VXLAN-TX-CSUM", Severity.WARNING)
    assert "calico #3145" in f.summary and "felix #2811" in f.evidence["sources"]
    now, rule = f.fix.split("\n", 1)
    assert now == "ethtool -K flannel.1 tx-checksum-ip-generic off"
    assert rule.startswith("cat > /etc/udev/rules.d/90-guestcheck-vxlan-flannel.1.rules <<'EOF'\n")
    [f] = check.run(*with_recorded(csum_facts("6.1.0-50-amd64")))
    assert f.severity == Severity.INFO and "flannel #1929" in f.summary
    assert check.run(*with_recorded(csum_facts("6.1.0", on=False))) == []


def test_checksum_fix_with_an_odd_name_has_no_udev_rule():
    name = "vx'0"
    [f] = check.run(*with_recorded(csum_facts("5.4.0", name=name)))
    assert f.fix == f"ethtool -K {shlex.quote(name)} tx-checksum-ip-generic off"


def test_kernel_version():
    assert kernel_version("5.10.0-21-amd64") == (5, 10)
    assert kernel_version("") is None


def test_every_id_is_explained():
    docs = catalog()
    for fid in ("TUNNEL-MTU", "VXLAN-TX-CSUM"):
        assert docs[fid].why and docs[fid].fix and docs[fid].title


def test_the_udev_rule_takes_the_names_tune_persists():
    """One rule for a name in a udev rule and its file name (guestcheck/names.py): '@' and '+' are in it."""
    [f] = check.run(*with_recorded(csum_facts("5.4.0", name="vx@1+a")))
    assert "/etc/udev/rules.d/90-guestcheck-vxlan-vx@1+a.rules" in f.fix
