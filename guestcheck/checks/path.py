"""The way out: no default route, a NAT that costs throughput, and a route MTU that disagrees with the link."""

from __future__ import annotations

import socket
from typing import Optional

from guestcheck.checks import FindingDoc
from guestcheck.facts import Facts, Route
from guestcheck.findings import Finding, Severity
from guestcheck.text import shell_word

IP_MAX_MTU = 65535  # the kernel caps a route's MTU here; lo has 65536

BRIDGE_FIX = (
    "Give the VM a bridged or tap NIC on the host instead of NAT: "
    "QEMU: -netdev tap,id=n0,vhost=on,script=no,ifname=tap0 -device virtio-net-pci,netdev=n0 (tap0 a port of a "
    "host bridge); libvirt: <interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>; "
    "or pass an SR-IOV virtual function through (<interface type='hostdev'>) for line rate."
)

FINDINGS = {
    "PATH-NO-DEFAULT-ROUTE": FindingDoc(
        "No default route",
        "warning",
        "Neither IPv4 nor IPv6 has a default route, so nothing beyond the directly connected networks is "
        "reachable: every transfer to the internet or another subnet fails before it starts.",
        "ip route add default via GATEWAY dev IFACE; to keep it: `gateway GATEWAY` in /etc/network/interfaces, "
        "or netplan routes: [{to: default, via: GATEWAY}], or nmcli con mod CON ipv4.gateway GATEWAY.",
    ),
    "PATH-NAT-SLIRP": FindingDoc(
        "QEMU user-mode networking (slirp) carries the traffic",
        "warning",
        "The default route goes via 10.0.2.2 on 10.0.2.0/24: QEMU's user-mode network (VirtualBox's NAT uses the "
        "same numbers). Every packet is re-created by a user-space TCP/IP stack in the QEMU process: a few "
        "hundred Mbit/s at best, added latency, no offloads (checksum, TSO) towards the guest, no ICMP beyond "
        "ping, and no inbound connections without port forwards. It is meant for convenience, not speed.",
        BRIDGE_FIX,
    ),
    "PATH-NAT-LIBVIRT": FindingDoc(
        "libvirt's default NAT network carries the traffic",
        "info",
        "The default route goes via 192.168.122.1 on 192.168.122.0/24: libvirt's `default` network, a host "
        "bridge (virbr0) behind masquerading NAT. The NAT runs in the host kernel, so throughput stays near a "
        "bridge's, but every flow costs a conntrack entry and host CPU, latency grows with the host's load, and "
        "nothing outside the host can reach the guest without port forwards.",
        BRIDGE_FIX,
    ),
    "PATH-MTU-MISMATCH": FindingDoc(
        "The default route's MTU differs from its interface's",
        "warning",
        "A route can carry its own MTU (`ip route ... mtu N`). Above the interface's MTU, locally sent packets "
        "are built too big for the link and dropped or fragmented (TCP stalls on large transfers); below it, "
        "every segment is smaller than the link allows and throughput drops with it (info, often deliberate for "
        "a tunnel).",
        "Make them agree: ip route change default via GATEWAY dev IFACE mtu IFACE_MTU (or drop the route's mtu), "
        "or raise the interface: ip link set IFACE mtu ROUTE_MTU; then make it persistent where the route is "
        "configured (netplan routes: mtu, /etc/network/interfaces `mtu`, DHCP option 26).",
    ),
}


def _in_network(address: Optional[str], network: str) -> bool:
    """Whether an IPv4 address lies in a.b.c.d/len (no ipaddress import: doctor's start-up is measured)."""
    if not address:
        return False
    base, _, plen = network.partition("/")
    try:
        a = int.from_bytes(socket.inet_aton(address), "big")
        b = int.from_bytes(socket.inet_aton(base), "big")
    except OSError:
        return False
    shift = 32 - int(plen or 32)
    return a >> shift == b >> shift


def _is_nat(route: Route, gateway: str, network: str) -> bool:
    """The gateway matches and the interface sits in the NAT's network (a connected route or its address)."""
    return route.gateway == gateway and (network in route.networks or _in_network(route.src_address, network))


def _evidence(route: Route) -> dict:
    return {"family": route.family, "dev": route.dev, "gateway": route.gateway, "networks": route.networks,
            "src_address": route.src_address, "table": route.table, "found_by": route.source}


def run(facts: Facts) -> list[Finding]:
    path = facts.path
    if path is None:
        return []
    out = []
    if not path.routes:
        out.append(Finding("PATH-NO-DEFAULT-ROUTE", Severity.WARNING, "routing",
                           "no IPv4 or IPv6 default route: only directly connected networks are reachable",
                           {"notes": path.notes}, FINDINGS["PATH-NO-DEFAULT-ROUTE"].fix))
    v4 = path.route("ipv4")
    if v4 is not None and _is_nat(v4, "10.0.2.2", "10.0.2.0/24"):
        what = "VirtualBox NAT" if facts.virt.hypervisor == "virtualbox" else "QEMU user-mode networking (slirp)"
        fix = BRIDGE_FIX
        if facts.virt.hypervisor == "virtualbox":
            fix = ("Attach the VM's adapter to \"Bridged Adapter\" (VBoxManage modifyvm VM --nic1 bridged "
                   "--bridgeadapter1 HOSTIF) instead of NAT, with the virtio-net adapter type.")
        out.append(Finding("PATH-NAT-SLIRP", Severity.WARNING, v4.dev or "default",
                           f"the default route goes via 10.0.2.2: {what}, a user-space NAT that caps "
                           "throughput and adds latency", {**_evidence(v4), "hypervisor": facts.virt.hypervisor},
                           fix))
    if v4 is not None and _is_nat(v4, "192.168.122.1", "192.168.122.0/24"):
        out.append(Finding("PATH-NAT-LIBVIRT", Severity.INFO, v4.dev or "default",
                           "the default route goes via 192.168.122.1: libvirt's default NAT network "
                           "(host conntrack per flow, no inbound reach)", _evidence(v4), BRIDGE_FIX))
    for route in path.routes:
        if route.mtu is None or route.dev_mtu is None or route.mtu == min(route.dev_mtu, IP_MAX_MTU):
            continue
        higher = route.mtu > route.dev_mtu
        dev = shell_word(route.dev or "IFACE")
        fix = (f"ip {'-6 ' if route.family == 'ipv6' else ''}route change default"
               f"{' via ' + shell_word(route.gateway) if route.gateway else ''} dev {dev} mtu {route.dev_mtu}"
               + (f"  (or, if the whole link carries {route.mtu}: ip link set {dev} mtu {route.mtu})"
                  if higher else "")
               + "; then the same where the route is configured (netplan routes: mtu, /etc/network/interfaces)")
        out.append(Finding(
            "PATH-MTU-MISMATCH", Severity.WARNING if higher else Severity.INFO, route.dev or route.family,
            f"{route.family} default route MTU {route.mtu} "
            + (f"exceeds the interface's {route.dev_mtu}: packets too big for the link"
               if higher else f"is below the interface's {route.dev_mtu}: smaller segments than the link allows"),
            {**_evidence(route), "route_mtu": route.mtu, "dev_mtu": route.dev_mtu}, fix))
    return out
