"""Overlay and tunnel devices (vxlan, geneve, gre, ipip, sit, ip6tnl, wireguard), what carries them, and the
bytes their encapsulation adds.

sysfs finds them cheaply: uevent DEVTYPE (vxlan, geneve, wireguard, gretap...) or the link type (ARPHRD_TUNNEL,
_SIT, _IPGRE...), and lower_* links where the kernel records one. Only when a tunnel exists is pyroute2 imported
(it costs ~300 ms at boot): IFLA_LINKINFO gives the kind, the remote and local addresses (hence IPv4 or IPv6
outer headers), the tunnel's own lower device and the GRE/ip6tnl options that add bytes; a route lookup to the
remote gives the device the encapsulated packets leave by when the tunnel names none.

Overheads, outer headers only (the inner packet is the tunnel's MTU), from the kernel's own figures:
vxlan VXLAN_HEADROOM 50 / VXLAN6_HEADROOM 70 (IP + UDP 8 + VXLAN 8 + Ethernet 14; include/net/vxlan.h);
geneve the same 50/70 plus options (GENEVE_IPV4_HLEN/GENEVE_IPV6_HLEN, drivers/net/geneve.c);
gre 20 + 4 (+ 4 each for checksum, key, sequence: gre_calc_hlen), gretap + 14 Ethernet;
ipip and sit 20; ip6tnl and ip6gre 40, + 8 for the encapsulation-limit option unless ignored
(ip6_tnl_link_config: `if (!(flags & IP6_TNL_F_IGN_ENCAP_LIMIT)) mtu -= 8`);
wireguard IP + UDP 8 + 32 (16 message header + 16 Poly1305 tag): 60 / 80, why its default MTU is 1420.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Tuple

from guestcheck.collect.area import Run
from guestcheck.collect.fs import cat, cat_int, listdir
from guestcheck.collect.tunnel_netlink import KINDS, Details, netlink_details
from guestcheck.facts import Tunnel
from guestcheck.roots import Roots
from guestcheck.uevent import parse_uevent

DEVTYPES = {"vxlan", "geneve", "wireguard", "gretap", "ip6gretap"}
ARPHRD_KINDS = {768: "ipip", 769: "ip6tnl", 776: "sit", 778: "gre", 823: "ip6gre"}
IP_HEADER = {"ipv4": 20, "ipv6": 40}
IP6_TNL_F_IGN_ENCAP_LIMIT = 0x1
# GRE header options that add 4 bytes each: checksum, key, sequence (GRE_CSUM, GRE_KEY, GRE_SEQ, big-endian).
GRE_OPTION_BITS = (0x8000, 0x2000, 0x1000)

Netlink = Callable[[List[str]], Tuple[Dict[str, Details], str]]


def _family_of(address: Optional[str]) -> Optional[str]:
    import ipaddress  # lazily: only a machine with tunnels pays for it, and doctor runs at every boot

    try:
        return "ipv6" if ipaddress.ip_address(str(address)).version == 6 else "ipv4"
    except ValueError:
        return None


def gre_options(flags: Optional[int]) -> int:
    """How many 4-byte GRE options the output flags turn on, whichever byte order the value arrives in."""
    if not flags:
        return 0
    swapped = ((flags & 0xFF) << 8) | ((flags >> 8) & 0xFF)
    for value in (flags, swapped):
        count = sum(1 for bit in GRE_OPTION_BITS if value & bit)
        if count and not value & 0x00B0:
            return count
    return 0


def overhead(kind: str, family: Optional[str], *, gre_flags: Optional[int] = None,
             encap_limit: bool = True) -> Tuple[Optional[int], str]:
    """Bytes of encapsulation and how they add up; family None means the outer family is not known."""
    if kind in ("ipip", "sit", "gre", "gretap"):
        family = "ipv4"
    elif kind in ("ip6tnl", "ip6gre", "ip6gretap"):
        family = "ipv6"
    elif family is None:
        return None, "outer address family not known"
    ip = IP_HEADER[family]
    ip_name = "IPv4" if family == "ipv4" else "IPv6"
    if kind in ("vxlan", "geneve"):
        name = "VXLAN" if kind == "vxlan" else "Geneve"
        extra = "" if kind == "vxlan" else " (+ options, per packet)"
        return ip + 30, f"{ip} {ip_name} + 8 UDP + 8 {name} + 14 Ethernet{extra}"
    if kind == "wireguard":
        return ip + 40, f"{ip} {ip_name} + 8 UDP + 32 WireGuard (16 header + 16 tag)"
    parts = [f"{ip} {ip_name}"]
    total = ip
    if kind in ("gre", "gretap", "ip6gre", "ip6gretap"):
        options = gre_options(gre_flags)
        total += 4 + 4 * options
        parts.append("4 GRE" + (f" + {4 * options} GRE options" if options else ""))
    if family == "ipv6" and encap_limit:
        total += 8
        parts.append("8 encapsulation limit option")
    if kind.endswith("tap"):
        total += 14
        parts.append("14 Ethernet")
    return total, " + ".join(parts)


def _sysfs_tunnels(roots: Roots) -> List[Tunnel]:
    net = os.path.join(roots.sys, "class/net")
    out = []
    for name in listdir(net):
        netdir = os.path.join(net, name)
        uevent = parse_uevent(cat(os.path.join(netdir, "uevent")))
        kind = uevent.get("DEVTYPE") if uevent.get("DEVTYPE") in DEVTYPES else None
        kind = kind or ARPHRD_KINDS.get(cat_int(os.path.join(netdir, "type")) or -1)
        if kind is None:
            continue
        flags = cat_int(os.path.join(netdir, "flags"), 16)
        lowers = [e[len("lower_"):] for e in listdir(netdir) if e.startswith("lower_")]
        out.append(Tunnel(
            name=name,
            kind=kind,
            mtu=cat_int(os.path.join(netdir, "mtu")),
            admin_up=None if flags is None else bool(flags & 1),
            lower=lowers[0] if lowers else None,
            lower_source="sysfs" if lowers else "",
        ))
    return out


def collect_tunnels(roots: Roots, netlink: Optional[Netlink] = None) -> List[Tunnel]:
    """Every tunnel device, with its overhead and lower device where they can be told.

    `netlink` replaces the pyroute2 pass in tests; on the real machine it runs only when sysfs shows a tunnel.
    """
    tunnels = _sysfs_tunnels(roots)
    if netlink is None and tunnels and roots.sys == "/sys":
        netlink = netlink_details
    details: Dict[str, Details] = {}
    problem = ""
    if netlink is not None and tunnels:
        details, problem = netlink(sorted(t.name for t in tunnels))
    by_name = {t.name: t for t in tunnels}
    for name, d in details.items():  # netlink may know tunnels sysfs does not mark (gretap on older kernels)
        if name not in by_name and d.get("kind") in KINDS:
            by_name[name] = Tunnel(name=name, kind=d["kind"], mtu=d.get("mtu"), admin_up=d.get("admin_up"))
    out = []
    for name in sorted(by_name):
        t = by_name[name]
        d = details.get(name)
        if d:
            t.source = "netlink"
            t.kind = d.get("kind") if d.get("kind") in KINDS else t.kind
            t.remote, t.local = d.get("remote"), d.get("local")
            t.family = d.get("family") or _family_of(t.remote) or _family_of(t.local)
            if d.get("lower"):
                t.lower, t.lower_source = d["lower"], d.get("lower_source", "link")
            t.lower_mtu = d.get("lower_mtu")
            t.route_mtu = d.get("route_mtu")
            t.notes.extend(d.get("notes", []))
        elif problem:
            t.notes.append(problem)
        if t.family is None and t.kind in ("vxlan", "geneve") and t.remote is None and t.local is None:
            t.family = "ipv4"  # the kernel's default for a remote it was not given
        if t.lower and t.lower_mtu is None:
            t.lower_mtu = cat_int(os.path.join(roots.sys, "class/net", t.lower, "mtu"))
        family = t.family
        if t.kind == "wireguard" and family is None:
            family = "ipv4"
            t.notes.append("no peer endpoint: judged with IPv4 outer headers, the smaller overhead")
        t.overhead, t.overhead_detail = overhead(
            t.kind, family, gre_flags=(d or {}).get("gre_flags"), encap_limit=(d or {}).get("encap_limit", True))
        out.append(t)
    return out


AREA = "tunnels"


def collect(run: Run) -> List[Tunnel]:
    return collect_tunnels(run.roots)
