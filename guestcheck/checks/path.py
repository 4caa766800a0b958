"""The way out: no default route, a gateway that does not answer, a NAT that costs throughput, and a route MTU
that disagrees with the link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from guestcheck.checks import FindingDoc
from guestcheck.facts import Facts, Route, Virt
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.netaddr import in_network
from guestcheck.text import shell_word

IP_MAX_MTU = 65535  # the kernel caps a route's MTU here; lo has 65536

BRIDGE_FIX = (
    "Give the VM a bridged or tap NIC on the host instead of NAT: "
    "QEMU: -netdev tap,id=n0,vhost=on,script=no,ifname=tap0 -device virtio-net-pci,netdev=n0 (tap0 a port of a "
    "host bridge); libvirt: <interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>; "
    "or pass an SR-IOV virtual function through (<interface type='hostdev'>) for line rate."
)

# Only the network's admin (or its DHCP server) knows the gateway: advice, never a command with a placeholder.
NO_ROUTE_HINT = (
    "Add a default route via your network's gateway: ip route add default via GATEWAY dev IFACE (usually DHCP "
    "gives it: look at the DHCP client's log); to keep it: `gateway GATEWAY` in /etc/network/interfaces, or "
    "netplan routes: [{to: default, via: GATEWAY}], or nmcli con mod CON ipv4.gateway GATEWAY."
)

FINDINGS = {
    "PATH-NO-DEFAULT-ROUTE": FindingDoc(
        "No default route",
        "warning",
        "Neither IPv4 nor IPv6 has a default route, so nothing beyond the directly connected networks is "
        "reachable: every transfer to the internet or another subnet fails before it starts.",
        NO_ROUTE_HINT,
        fix_on="",  # no command can be given: the gateway is the network's, not in this machine's facts
    ),
    "PATH-NAT-SLIRP": FindingDoc(
        "QEMU user-mode networking (slirp) carries the traffic",
        "warning",
        "The default route goes via 10.0.2.2 on 10.0.2.0/24 and the network behaves as QEMU's user-mode network "
        "does (VirtualBox's NAT and slirp4netns use the same numbers). Every packet is re-created by a user-space "
        "TCP/IP stack in the QEMU process: a few hundred Mbit/s at best, added latency, no offloads (checksum, "
        "TSO) towards the guest, no ICMP beyond ping, and no inbound connections without port forwards. It is "
        "meant for convenience, not speed. The numbers alone are only a hint (anyone may number a bridge so): "
        "it is reported when the platform can run slirp (QEMU, KVM outside a cloud, VirtualBox, a container, or "
        "unknown) and the gateway answers with slirp's link-layer address (52:55:0a:00:02:02; VirtualBox: "
        "52:54:00:12:35:02) or, before the gateway was ever reached, the resolver is slirp's 10.0.2.3.",
        BRIDGE_FIX,
        fix_on="host",
    ),
    "PATH-NAT-LIBVIRT": FindingDoc(
        "libvirt's default NAT network carries the traffic",
        "info",
        "The default route goes via 192.168.122.1 on 192.168.122.0/24: libvirt's `default` network, a host "
        "bridge (virbr0) behind masquerading NAT. The NAT runs in the host kernel, so throughput stays near a "
        "bridge's, but every flow costs a conntrack entry and host CPU, latency grows with the host's load, and "
        "nothing outside the host can reach the guest without port forwards. The numbers alone are only a hint: "
        "it is reported when the platform can run libvirt (QEMU or KVM outside a cloud, or unknown) and the "
        "gateway's link-layer address is libvirt's (52:54:00:…) or, before it was reached, the resolver is "
        "its dnsmasq on 192.168.122.1.",
        BRIDGE_FIX,
        fix_on="host",
    ),
    "PATH-DEFAULT-ROUTE": FindingDoc(
        "The default route, and why it is not a user-mode NAT",
        "ok",
        "The route each family's traffic leaves by. Where the numbers look like a NAT's (slirp's 10.0.2.0/24, "
        "libvirt's 192.168.122.0/24), the evidence says what was checked and what ruled it out.",
        "Nothing to fix.",
        fix_on="",
    ),
    "PATH-GATEWAY-UNREACHABLE": FindingDoc(
        "The default route's gateway does not answer",
        "warning",
        "The kernel asked for the gateway's link-layer address (ARP for IPv4, neighbour discovery for IPv6) and "
        "got no answer: its neighbour entry is FAILED (`ip neigh show`). Every packet to another network in "
        "that family is dropped before it leaves, while the route looks fine; for IPv6, programs that try it "
        "first wait for a timeout before falling back to IPv4. The entry exists only after traffic tried the "
        "gateway, so a quiet machine may not show it. Causes: a wrong gateway address (a typo, a stale DHCP or "
        "router advertisement, an address from another network), the host's bridge or VLAN not carrying this "
        "link, a security group or a firewall dropping ARP/NDP, or a router that is down.",
        "There is no command to paste: look first. Check the gateway with `ip route show default` (`ip -6 route "
        "show default`) against what the network hands out (DHCP, router advertisements: rdisc6 IFACE), the "
        "link with `ip link show dev IFACE`, and try it again with `ping -c 3 GATEWAY` then `ip neigh show dev "
        "IFACE`. Correct the gateway where the route is configured (netplan, /etc/network/interfaces, "
        "NetworkManager), or fix the network on the host's side.",
        fix_on="",  # never a command: the remedy is the network's, or a configuration doctor cannot know
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


@dataclass(frozen=True)
class NatSignature:
    """How a NAT that guests commonly sit behind numbers its network and shows itself on the wire."""

    finding_id: str
    name: str
    network: str
    gateway: str
    resolver: str  # the DNS server it hands out by DHCP
    gateway_macs: tuple[str, ...] = ()  # exact link-layer addresses of its gateway
    gateway_mac_prefix: str = ""  # or the prefix they all have
    platforms: frozenset[str] = frozenset()  # hypervisors that can run it (outside a cloud)
    in_containers: bool = False  # a container's own network stack (slirp4netns) can run it too


SLIRP = NatSignature("PATH-NAT-SLIRP", "slirp", "10.0.2.0/24", "10.0.2.2", "10.0.2.3",
                     # libslirp answers for its virtual hosts as 52:55 followed by their IPv4 address
                     gateway_macs=("52:55:0a:00:02:02", "52:54:00:12:35:02"),  # ... and VirtualBox's NAT
                     platforms=frozenset({"qemu", "kvm", "virtualbox", "unknown"}), in_containers=True)
LIBVIRT = NatSignature("PATH-NAT-LIBVIRT", "libvirt's default network", "192.168.122.0/24", "192.168.122.1",
                       "192.168.122.1", gateway_mac_prefix="52:54:00:", platforms=frozenset({"qemu", "kvm",
                                                                                              "unknown"}))


def nat_evidence(sig: NatSignature, route: Route, nameservers: list[str],
                 virt: Virt) -> Optional[tuple[bool, dict]]:
    """None when the numbers are not `sig`'s; else whether everything else agrees, with what was checked."""
    if route.gateway != sig.gateway or not (sig.network in route.networks or in_network(route.src_address,
                                                                                          sig.network)):
        return None
    ev: dict = {"hint": f"default route via {sig.gateway} on {sig.network}: {sig.name}'s numbers"}
    mac = route.gateway_mac
    if mac is None:
        on_wire = sig.resolver in nameservers
        ev["gateway_mac"] = "not resolved yet (no traffic to the gateway since its entry expired)"
        ev["resolver"] = (f"{sig.resolver} is {sig.name}'s" if on_wire
                          else f"{', '.join(nameservers) or 'none'}: not {sig.name}'s {sig.resolver}")
    else:
        on_wire = mac in sig.gateway_macs or bool(sig.gateway_mac_prefix and mac.startswith(sig.gateway_mac_prefix))
        ev["gateway_mac"] = f"{mac}: {'' if on_wire else 'not '}{sig.name}'s"
    hypervisor = virt.hypervisor
    platform_can = (sig.in_containers and virt.container is not None) or (
        hypervisor in sig.platforms and virt.cloud is None)
    where = f"container {virt.container}" if virt.container else (hypervisor or "bare metal")
    if virt.cloud:
        where += f" on {virt.cloud}"
    ev["platform"] = f"{where}: {'can' if platform_can else 'cannot'} run {sig.name}"
    return on_wire and platform_can, ev


def _evidence(route: Route) -> dict:
    return {"family": route.family, "dev": route.dev, "gateway": route.gateway, "networks": route.networks,
            "src_address": route.src_address, "table": route.table, "found_by": route.source}


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [("PATH-MTU*", ("mtu",))]


def run(facts: Facts, judged: Judged) -> list[Finding]:
    path = facts.path
    if path is None:
        return []
    out = []
    if not path.routes:
        out.append(Finding("PATH-NO-DEFAULT-ROUTE", Severity.WARNING, "routing",
                           "no IPv4 or IPv6 default route: only directly connected networks are reachable",
                           {"notes": path.notes}, hint=NO_ROUTE_HINT))
    out.extend(_gateway_unreachable(route) if route.gateway_state == "failed"
               else _route_finding(route, path.nameservers, judged.virt) for route in path.routes)
    for route in path.routes:
        if route.mtu is None or route.dev_mtu is None or route.mtu == min(route.dev_mtu, IP_MAX_MTU):
            continue
        higher = route.mtu > route.dev_mtu
        # the fix is the command alone, pasteable; the other way and persisting it are in the evidence/explain
        command = (f"ip {'-6 ' if route.family == 'ipv6' else ''}route change default"
                   f"{' via ' + shell_word(route.gateway) if route.gateway else ''} dev "
                   f"{shell_word(route.dev) if route.dev else 'IFACE'} mtu {route.dev_mtu}")
        # a route with no device named (multipath) gets no command with a placeholder in it: advice instead
        fix, hint = (command, "") if route.dev else ("", f"{command} (IFACE: the route's device)")
        evidence = {**_evidence(route), "route_mtu": route.mtu, "dev_mtu": route.dev_mtu,
                    "persist": "the same where the route is configured (netplan routes: mtu, "
                               "/etc/network/interfaces, DHCP option 26)"}
        if higher:
            evidence["or_instead"] = (f"if the whole link carries {route.mtu}: "
                                      f"ip link set {shell_word(route.dev or '')} mtu {route.mtu}")
        out.append(Finding(
            "PATH-MTU-MISMATCH", Severity.WARNING if higher else Severity.INFO, route.dev or route.family,
            f"{route.family} default route MTU {route.mtu} "
            + (f"exceeds the interface's {route.dev_mtu}: packets too big for the link"
               if higher else f"is below the interface's {route.dev_mtu}: smaller segments than the link allows"),
            evidence, fix, hint=hint))
    return out


def _gateway_unreachable(route: Route) -> Finding:
    """The gateway's neighbour entry is FAILED: the route is listed, yet nothing off-link gets through."""
    six = "-6 " if route.family == "ipv6" else ""
    dev = shell_word(route.dev or "")
    gateway = shell_word(route.gateway or "")
    evidence = {**_evidence(route), "gateway_state": route.gateway_state,
                "what": f"address resolution for {route.gateway} on {route.dev} got no answer, so the kernel "
                        f"drops what it would send through it",
                "look": [f"ip {six}route show default", f"ip {six}neigh show dev {dev}", f"ip link show dev {dev}",
                         f"ping -c 3 {gateway}"]}
    return Finding("PATH-GATEWAY-UNREACHABLE", Severity.WARNING, route.dev or route.family,
                   f"{route.family} default gateway {route.gateway} on {route.dev} does not answer (neighbour "
                   f"FAILED): off-link {route.family} traffic goes nowhere; check the gateway address and the "
                   "link (see evidence)", evidence, "",
                   hint=f"look first: {'; '.join(evidence['look'])}; then correct the gateway where the route is "
                        "configured (netplan, /etc/network/interfaces, NetworkManager) or on the host's side")


def _route_finding(route: Route, nameservers: list[str], virt: Virt) -> Finding:
    """A NAT finding where the numbers and the behaviour agree; else the route, ok, with what ruled a NAT out."""
    subject = route.dev or route.family
    ruled_out: dict = {}
    for sig in (SLIRP, LIBVIRT):
        judged = nat_evidence(sig, route, nameservers, virt)
        if judged is None:
            continue
        confirmed, ev = judged
        if not confirmed:
            ruled_out[sig.name] = ev
            continue
        if sig is LIBVIRT:
            return Finding("PATH-NAT-LIBVIRT", Severity.INFO, subject,
                           f"the default route goes via {sig.gateway}: libvirt's default NAT network "
                           "(host conntrack per flow, no inbound reach)", {**_evidence(route), **ev}, BRIDGE_FIX)
        vbox = virt.hypervisor == "virtualbox"
        what = "VirtualBox NAT" if vbox else "QEMU user-mode networking (slirp)"
        fix = BRIDGE_FIX
        if vbox:
            fix = ("Attach the VM's adapter to \"Bridged Adapter\" (VBoxManage modifyvm VM --nic1 bridged "
                   "--bridgeadapter1 HOSTIF) instead of NAT, with the virtio-net adapter type.")
        return Finding("PATH-NAT-SLIRP", Severity.WARNING, subject,
                       f"the default route goes via {sig.gateway}: {what}, a user-space NAT that caps "
                       "throughput and adds latency", {**_evidence(route), **ev, "hypervisor": virt.hypervisor},
                       fix)
    via = f" via {route.gateway}" if route.gateway else ""
    summary = f"{route.family} default route{via} on {route.dev or '?'}"
    if ruled_out:
        summary += ": " + ", ".join(f"not {name}" for name in ruled_out) + " (numbers alone are only a hint)"
    return Finding("PATH-DEFAULT-ROUTE", Severity.OK, subject, summary,
                   {**_evidence(route), **({"nat_ruled_out": ruled_out} if ruled_out else {})}, "")
