"""Tunnels on the real kernel, inside namespaces: an MTU with no room for the encapsulation is found, and the
finding's own fix, run verbatim with sh -c inside the namespace, clears it."""

from __future__ import annotations

import sys

import pytest

from tests.live.dfping import df_ping
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


def test_vxlan_bound_to_a_device_follows_the_route_mtu_to_its_remote() -> None:
    """Issue 19: `ip link set va0 mtu 1400; ip route add REMOTE/32 dev va0 mtu 1300`, a vxlan with `dev va0`.
    doctor said 1350 fits (the device's MTU); the route caps the packets at 1300, so 1250 fits. After the printed
    fix, DF pings of the size doctor says fits go through, and doctor reports nothing."""
    with netns() as a, netns() as b, veth_pair(a, b, a_addr="10.99.1.2/24", b_addr="10.99.1.3/24",
                                                a_name="va0", b_name="vb0"):
        a.ip("link", "set", "va0", "mtu", "1400")
        b.ip("link", "set", "vb0", "mtu", "1400")
        a.ip("route", "add", "10.99.1.3/32", "dev", "va0", "mtu", "1300")
        a.ip("link", "add", "vxa", "type", "vxlan", "id", "45", "dev", "va0", "remote", "10.99.1.3",
             "local", "10.99.1.2", "dstport", "4789")
        b.ip("link", "add", "vxb", "type", "vxlan", "id", "45", "dev", "vb0", "remote", "10.99.1.2",
             "local", "10.99.1.3", "dstport", "4789")
        for ns, dev, addr in ((a, "vxa", "10.98.0.1/24"), (b, "vxb", "10.98.0.2/24")):
            ns.ip("link", "set", dev, "mtu", "1350")  # what doctor used to say fits
            ns.ip("addr", "add", addr, "dev", dev)
            ns.ip("link", "set", dev, "up")
        f, tunnel = tunnel_mtu_finding(a, "vxa")
        assert (tunnel["lower"], tunnel["lower_source"], tunnel["route_mtu"]) == ("va0", "link", 1300)
        assert f is not None and f["evidence"]["fits"] == 1250, f
        assert f["fix"] == "ip link set dev vxa mtu 1250"
        assert "the route to 10.99.1.3 via va0, mtu 1300" in f["summary"]
        # the size doctor used to say fits: the first DF ping teaches the kernel the path MTU (1250), then
        # every one fails (`ping -M do -s 1322`: "message too long, mtu=1250")
        df_ping(a, "10.98.0.2", 1350 - 28)
        assert not df_ping(a, "10.98.0.2", 1350 - 28)
        apply_fix(a, f["fix"])
        assert df_ping(a, "10.98.0.2", f["evidence"]["fits"] - 28)
        assert df_ping(a, "10.98.0.2", f["evidence"]["fits"] - 28)
        assert mtu_findings(a) == {}


def _counters(ns: Netns, dev: str) -> dict:
    names = ("tx_errors", "tx_aborted_errors", "tx_dropped", "tx_carrier_errors")
    return {n: int(ns.run(["cat", f"/sys/class/net/{dev}/statistics/{n}"]).stdout) for n in names}


def test_tx_errors_of_a_too_large_frame_name_their_counter_and_the_mtu_finding() -> None:
    """Issue 19: a DF ping over a vxlan whose MTU is too big for the path makes the vxlan refuse the outer packet
    (tx_errors with tx_aborted_errors on 6.1; tx_dropped on kernels whose vxlan keeps per-CPU dstats). doctor
    blamed a full queue; it must name the counter that moved and the TUNNEL-MTU finding on the same device."""
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "set", "gc0", "mtu", "1400")
        b.ip("link", "set", "gc1", "mtu", "1400")
        # `df set`: the outer packets carry DF, so the one too large for gc0 is refused, not fragmented
        a.ip("link", "add", "gcvx5", "type", "vxlan", "id", "46", "remote", "10.199.0.2", "local", "10.199.0.1",
             "dstport", "4789", "df", "set")
        b.ip("link", "add", "gcvx6", "type", "vxlan", "id", "46", "remote", "10.199.0.1", "local", "10.199.0.2",
             "dstport", "4789")
        for ns, dev, addr in ((a, "gcvx5", "10.98.1.1/24"), (b, "gcvx6", "10.98.1.2/24")):
            ns.ip("addr", "add", addr, "dev", dev)
            ns.ip("link", "set", dev, "up")
        assert df_ping(a, "10.98.1.2", 100)  # small packets pass
        before = _counters(a, "gcvx5")
        df_ping(a, "10.98.1.2", 1400)  # 1428 inner + 50 > 1400
        moved = {k for k, v in _counters(a, "gcvx5").items() if v > before[k]}
        assert moved & {"tx_aborted_errors", "tx_dropped"}, moved
        doc = doctor(a)
        [mtu] = [f for f in doc["findings"] if f["id"] == "TUNNEL-MTU" and f["subject"] == "gcvx5"]
        [drops] = [f for f in doc["findings"] if f["id"] == "NIC-DROPS" and f["subject"] == "gcvx5"]
        named = "tx_aborted_errors" if "tx_aborted_errors" in moved else "tx_dropped"
        assert named in drops["summary"] and drops["evidence"]["transmit"].startswith(named + ":")
        assert "TUNNEL-MTU on gcvx5" in drops["summary"]
        assert drops["evidence"]["see"] == f"TUNNEL-MTU [gcvx5]: {mtu['summary']}"
        assert "full transmit queue" not in drops["evidence"]["transmit"]
