"""Tunnels on the real kernel, inside namespaces: an MTU with no room for the encapsulation is found, and the
finding's own fix, run verbatim with sh -c inside the namespace, clears it."""

from __future__ import annotations

import sys

import pytest

from tests.live.nsdoctor import doctor, findings, run_fix
from tests.netns import Netns, netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns]


def mtu_findings(ns: Netns) -> dict:
    return {f["subject"]: f for f in findings(doctor(ns), "TUNNEL-MTU").values()}


def tunnel_mtu_finding(ns: Netns, name: str):
    doc = doctor(ns)
    found = [f for f in doc["findings"] if f["id"] == "TUNNEL-MTU" and f["subject"] == name]
    tunnel = next(t for t in doc["facts"]["tunnels"] if t["name"] == name)
    return (found[0] if found else None), tunnel


def apply_fix(ns: Netns, fix: str) -> None:
    out = ns.run(["sh", "-c", fix], check=False)
    assert out.returncode == 0, (fix, out.stderr)


def test_vxlan_routed_over_a_veth_without_room_then_fixed() -> None:
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "set", "gc0", "mtu", "1400")
        # no `dev`: the kernel gives it 1500, and the route to the remote says which device carries it
        a.ip("link", "add", "gcvx0", "type", "vxlan", "id", "42", "remote", "10.199.0.2", "dstport", "4789")
        a.ip("link", "set", "gcvx0", "up")
        f, tunnel = tunnel_mtu_finding(a, "gcvx0")
        assert (tunnel["kind"], tunnel["family"], tunnel["overhead"], tunnel["source"]) == (
            "vxlan", "ipv4", 50, "netlink")
        assert (tunnel["lower"], tunnel["lower_mtu"], tunnel["lower_source"]) == ("gc0", 1400, "route")
        assert f is not None and f["severity"] == "warning"
        assert f["evidence"]["fits"] == 1350 and f["fix"] == "ip link set dev gcvx0 mtu 1350"
        apply_fix(a, f["fix"])
        assert a.run(["cat", "/sys/class/net/gcvx0/mtu"]).stdout.strip() == "1350"
        f, tunnel = tunnel_mtu_finding(a, "gcvx0")
        assert f is None and tunnel["mtu"] == 1350


def test_vxlan_on_a_lower_device_whose_mtu_was_lowered_later() -> None:
    with netns() as a, netns() as b, veth_pair(a, b):
        # with `dev` the kernel sizes the vxlan (1450) but does not follow a later change of the lower MTU
        a.ip("link", "add", "gcvx1", "type", "vxlan", "id", "43", "dev", "gc0", "local", "10.199.0.1",
             "dstport", "4790")
        assert mtu_findings(a) == {}
        a.ip("link", "set", "gc0", "mtu", "1280")
        f, tunnel = tunnel_mtu_finding(a, "gcvx1")
        assert tunnel["lower_source"] == "link" and tunnel["mtu"] == 1450
        assert f is not None and f["fix"] == "ip link set dev gcvx1 mtu 1230"
        apply_fix(a, f["fix"])
        assert mtu_findings(a) == {}


def test_vxlan_checksum_finding_names_its_source_and_its_fix_works() -> None:
    with netns() as a:
        a.ip("link", "add", "gcvx2", "type", "vxlan", "id", "44", "remote", "10.199.0.9", "dstport", "4791")
        doc = doctor(a)
        [f] = [f for f in doc["findings"] if f["id"] == "VXLAN-TX-CSUM"]
        assert f["subject"] == "gcvx2" and "flannel" in f["evidence"]["sources"]
        assert f["fix"].split("\n")[0] == "ethtool -K gcvx2 tx-checksum-ip-generic off"
        (written,) = run_fix(a, f)  # the udev rule goes to a private tmpfs /etc, checked there
        assert "== /etc/udev/rules.d/90-guestcheck-vxlan-gcvx2.rules" in written
        assert 'ENV{INTERFACE}=="gcvx2", RUN+="/usr/sbin/ethtool -K gcvx2 tx-checksum-ip-generic off"' in written
        assert not [f for f in doctor(a)["findings"] if f["id"] == "VXLAN-TX-CSUM"]


WG_PEER = """
import base64, os
from pyroute2 import WireGuard
key = lambda: base64.b64encode(os.urandom(32)).decode()
wg = WireGuard()
wg.set("gctun", private_key=key(), peer={"public_key": key(), "endpoint_addr": "10.199.0.2",
                                         "endpoint_port": 51820, "allowed_ips": ["10.9.0.0/24"]})
wg.close()
"""


def _can_add(ns: Netns, *args: str) -> bool:
    return ns.ip("link", "add", *args, check=False).returncode == 0


@pytest.mark.parametrize("kind", ["gre", "wireguard"])
def test_gre_and_wireguard_where_this_kernel_has_them(kind: str) -> None:
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "set", "gc0", "mtu", "1400")
        if kind == "gre":
            added = _can_add(a, "gctun", "type", "gre", "remote", "10.199.0.2", "local", "10.199.0.1")
        else:
            added = _can_add(a, "gctun", "type", "wireguard")
        if not added:
            pytest.skip(f"this kernel has no {kind} (`ip link add ... type {kind}` fails); "
                        "the QEMU guest test covers it with the Debian kernel")
        if kind == "wireguard":  # a peer, so the route to its endpoint names the lower device
            a.run([sys.executable, "-c", WG_PEER])
        a.ip("link", "set", "gctun", "mtu", "1500", "up")
        f, tunnel = tunnel_mtu_finding(a, "gctun")
        assert f is not None, tunnel
        apply_fix(a, f["fix"])
        assert tunnel_mtu_finding(a, "gctun")[0] is None
