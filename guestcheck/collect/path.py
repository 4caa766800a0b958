"""The path out: the default route of each family, the interface carrying it, and the route's MTU.

Strategies, cheapest first (doctor runs at boot; importing pyroute2 costs 200-470 ms, more than all of
doctor's other work together):

1. procfs: /proc/net/route and /proc/net/ipv6_route give the main table's default route, its gateway,
   interface and metric, and the connected networks. Always read; works without pyroute2.
2. A kernel route lookup through an unsent UDP socket (live machine only): connect() to a documentation
   address (192.0.2.1, 2001:db8::1) sends nothing, yet the kernel resolves the route it would use, policy
   rules included; IP_MTU then gives the route's MTU as the kernel applies it (the route's `mtu` metric,
   else the link's), which procfs never shows (its "MTU" column is advmss + 40), and getsockname() the
   source address.
3. netlink via pyroute2, imported only when 1 and 2 disagree: the kernel routes through another table
   (policy routing: wg-quick, multi-homed cloud images) or procfs has no default at all. `route get`
   names the interface, gateway and table the kernel really uses.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any, Callable, Dict, List, Optional, Tuple

from guestcheck.collect.area import Run
from guestcheck.collect.fs import cat, cat_int
from guestcheck.facts import Path, Route
from guestcheck.netaddr import in_network
from guestcheck.quantities import parse_int
from guestcheck.roots import Roots
from guestcheck.rtnetlink import attributes, dump

RTF_UP = 0x0001
RTF_GATEWAY = 0x0002
RTF_REJECT = 0x0200
RTF_CACHE = 0x01000000
RTF_LOCAL = 0x80000000
IP_MTU = getattr(socket, "IP_MTU", 14)  # Python does not export these on every version
IPV6_MTU = getattr(socket, "IPV6_MTU", 24)
SIOCGIFADDR = 0x8915
RTM_F_LOOKUP_TABLE = 0x1000
# Documentation addresses (RFC 5737, RFC 3849/9637): no real host, so normally only a default route
# covers them. Some labs number their own links from them, so the first one no other route covers is used.
PROBE_CANDIDATES = {
    "ipv4": ("192.0.2.1", "198.51.100.1", "203.0.113.1"),
    "ipv6": ("2001:db8::1", "2001:db8:ffff::1", "3fff::1"),
}


# Neighbour states (include/uapi/linux/neighbour.h NUD_*), as `ip neigh` names them.
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
NDMSG = struct.Struct("=BxxxiHBB")  # family, (pad), ifindex, state, flags, type
NDA_DST = 1
NUD_STATES = {0x01: "incomplete", 0x02: "reachable", 0x04: "stale", 0x08: "delay", 0x10: "probe",
              0x20: "failed", 0x40: "noarp", 0x80: "permanent"}


class ProcRoute:
    """One line of /proc/net/route or /proc/net/ipv6_route, decoded."""

    def __init__(self, family: str, dev: str, dest: int, plen: int, gateway: Optional[str], metric: int) -> None:
        self.family = family
        self.dev = dev
        self.dest = dest
        self.plen = plen
        self.gateway = gateway
        self.metric = metric

    @property
    def is_default(self) -> bool:
        return self.plen == 0

    def cidr(self) -> str:
        if self.family == "ipv4":
            return f"{socket.inet_ntoa(self.dest.to_bytes(4, 'big'))}/{self.plen}"
        return f"{socket.inet_ntop(socket.AF_INET6, self.dest.to_bytes(16, 'big'))}/{self.plen}"

    def contains(self, address: str) -> bool:
        return in_network(address, self.cidr())


def parse_ipv4_routes(text: Optional[str]) -> List[ProcRoute]:
    """/proc/net/route: addresses are hex in host (little-endian) byte order."""
    out = []
    for line in (text or "").splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest, gw, flags, metric, mask = (struct.unpack("<I", bytes.fromhex(cols[1]))[0],
                                             bytes.fromhex(cols[2])[::-1], parse_int(cols[3], base=16),
                                             parse_int(cols[6]), struct.unpack("<I", bytes.fromhex(cols[7]))[0])
        except (ValueError, struct.error):
            continue
        if not flags & RTF_UP or flags & RTF_REJECT:
            continue
        gateway = socket.inet_ntoa(gw) if flags & RTF_GATEWAY else None
        dest_be = int.from_bytes(struct.pack(">I", dest), "big")
        out.append(ProcRoute("ipv4", cols[0], dest_be, bin(mask).count("1"), gateway, metric))
    return out


def parse_ipv6_routes(text: Optional[str]) -> List[ProcRoute]:
    """/proc/net/ipv6_route: dest plen src srcplen nexthop metric refcnt use flags dev (hex)."""
    out = []
    for line in (text or "").splitlines():
        cols = line.split()
        if len(cols) < 10:
            continue
        try:
            dest, plen = parse_int(cols[0], base=16, max_digits=32), parse_int(cols[1], base=16)
            nexthop = bytes.fromhex(cols[4])
            metric, flags = parse_int(cols[5], base=16), parse_int(cols[8], base=16)
        except ValueError:
            continue
        if not flags & RTF_UP or flags & (RTF_REJECT | RTF_CACHE | RTF_LOCAL) or cols[9] == "lo":
            continue
        if plen and dest >> 120 == 0xFF:
            continue  # multicast (ff00::/8): not a network the host sits on
        gateway = socket.inet_ntop(socket.AF_INET6, nexthop) if flags & RTF_GATEWAY else None
        out.append(ProcRoute("ipv6", cols[9], dest, plen, gateway, metric))
    return out


Probe = Callable[[str, str], Optional[Tuple[int, str]]]
Neighbours = Callable[[str], Dict[Tuple[int, str], str]]  # family -> {(ifindex, address): state}
Netlink = Callable[[str, str], Tuple[Optional[Dict[str, Any]], str]]
AddressOf = Callable[[str, str], List[str]]


def kernel_route_probe(family: str, destination: str) -> Optional[Tuple[int, str]]:
    """(route MTU, source address) of the route the kernel would use off-link; None when it has none.

    A connected UDP socket sends nothing: connect() only looks the route up.
    """
    af, level, opt = ((socket.AF_INET, socket.IPPROTO_IP, IP_MTU) if family == "ipv4"
                      else (socket.AF_INET6, socket.IPPROTO_IPV6, IPV6_MTU))
    try:
        with socket.socket(af, socket.SOCK_DGRAM) as s:
            s.connect((destination, 9))
            return s.getsockopt(level, opt), s.getsockname()[0]
    except OSError:  # ENETUNREACH, EADDRNOTAVAIL (no usable source), EAFNOSUPPORT (IPv6 disabled)
        return None


def interface_addresses(roots: Roots, family: str, dev: str) -> List[str]:
    """The addresses of one interface: /proc/net/if_inet6 for IPv6, SIOCGIFADDR (the primary) for IPv4."""
    if family == "ipv6":
        out = []
        for line in (cat(os.path.join(roots.proc, "net/if_inet6")) or "").splitlines():
            cols = line.split()
            if len(cols) >= 6 and cols[5] == dev:
                out.append(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(cols[0])))
        return out
    import fcntl

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            answer = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", dev.encode()[:15]))
        return [socket.inet_ntoa(answer[20:24])]
    except OSError:
        return []


def route_get(ipr: Any, destination: str, oif: Optional[int] = None) -> Optional[Dict[str, Any]]:
    """`ip route get DESTINATION [oif DEV]` on an open pyroute2 IPRoute: the route the kernel really uses, or
    None. The one netlink route lookup (doctor's path, selftest's egress, the tunnels' lower device); `oif` for
    a sender bound to a device (a vxlan with `dev`), as the kernel looks its route up."""
    # 0.7 returns a tuple, 0.9 a list; both carry rtmsg objects with get_attr().
    # RTM_F_LOOKUP_TABLE, as `ip route get` sends it: without it the kernel reports table main.
    extra = {"oif": oif} if oif else {}
    answers = list(ipr.route("get", dst=destination, flags=RTM_F_LOOKUP_TABLE, **extra))
    if not answers:
        return None
    msg = answers[0]
    oif = msg.get_attr("RTA_OIF")
    links = list(ipr.get_links(oif)) if oif else []
    metrics = msg.get_attr("RTA_METRICS")
    return {
        "oif": oif,
        "dev": links[0].get_attr("IFLA_IFNAME") if links else None,
        "gateway": msg.get_attr("RTA_GATEWAY"),
        "table": msg.get_attr("RTA_TABLE") or msg.get("table"),
        "prefsrc": msg.get_attr("RTA_PREFSRC"),
        "metric": msg.get_attr("RTA_PRIORITY"),
        "mtu": metrics.get_attr("RTAX_MTU") if metrics is not None else None,  # a route's own `mtu`
    }


def netlink_route(family: str, destination: str) -> Tuple[Optional[Dict[str, Any]], str]:
    """`ip route get` through pyroute2: the route the kernel really uses. (answer, problem)."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return None, "pyroute2 is not installed (python3-pyroute2)"
    try:
        with IPRoute() as ipr:
            answer = route_get(ipr, destination)
        return (answer, "") if answer is not None else (None, "netlink returned no route")
    except Exception as e:  # pyroute2 raises its own NetlinkError besides OSError; either means "no answer"
        return None, f"netlink route lookup failed: {type(e).__name__}: {e}"


def _table_name(table: Any) -> str:
    names = {254: "main", 255: "local", 253: "default"}
    return names.get(table, str(table)) if isinstance(table, int) else str(table or "?")


def default_route(
    roots: Roots,
    family: str,
    routes: List[ProcRoute],
    probe: Optional[Probe],
    addresses: AddressOf,
    netlink: Netlink,
    notes: List[str],
) -> Optional[Route]:
    defaults = sorted((r for r in routes if r.is_default), key=lambda r: r.metric)
    chosen = defaults[0] if defaults else None
    specific = [r for r in routes if not r.is_default]
    destination = next((a for a in PROBE_CANDIDATES[family] if not any(r.contains(a) for r in specific)), None)
    probed = probe(family, destination) if probe and destination else None

    def networks(dev: Optional[str]) -> List[str]:
        return [r.cidr() for r in routes if r.dev == dev and r.gateway is None and not r.is_default]

    route = None
    if chosen is not None:
        route = Route(family, chosen.dev, chosen.gateway, chosen.metric, "main", "procfs", networks(chosen.dev))
    if probed is not None:
        mtu, src = probed
        consistent = chosen is not None and src in addresses(family, chosen.dev)
        if not consistent:
            answer, problem = netlink(family, destination or PROBE_CANDIDATES[family][0])
            if answer is not None:
                route = Route(family, answer["dev"], answer["gateway"], answer["metric"],
                              _table_name(answer["table"]), "netlink", networks(answer["dev"]))
            elif chosen is None:
                notes.append(f"{family}: the kernel routes off-link traffic, but not through the main table; "
                             f"{problem}")
                route = Route(family, None, None, None, "?", "probe")
            else:
                notes.append(f"{family}: the source address {src} is not on {chosen.dev}; {problem}")
        if route is not None:
            route.src_address = src
            route.mtu = mtu
    elif probe is not None and destination is not None and chosen is not None:
        notes.append(f"{family}: a default route via {chosen.dev} is listed, but the kernel cannot use it "
                     "(no source address, or the link is down)")
    if route is not None and route.dev:
        route.dev_mtu = cat_int(os.path.join(roots.sys, "class/net", route.dev, "mtu"))
    return route


def kernel_neighbours(family: str) -> Dict[Tuple[int, str], str]:
    """The kernel's neighbour table of one family (`ip neigh show`): (ifindex, address) -> state. No procfs
    file has the IPv6 one, and /proc/net/arp cannot tell an entry being resolved from one that failed."""
    af = socket.AF_INET if family == "ipv4" else socket.AF_INET6
    out = {}
    for kind, body in dump(RTM_GETNEIGH, NDMSG.pack(af, 0, 0, 0, 0)):
        if kind != RTM_NEWNEIGH or len(body) < NDMSG.size:
            continue
        got_family, ifindex, state, _, _ = NDMSG.unpack_from(body, 0)
        if got_family != af:
            continue
        for rta_type, payload in attributes(body, NDMSG.size):
            if rta_type == NDA_DST and len(payload) in (4, 16):
                address = socket.inet_ntop(af, payload)
                out[(ifindex, address)] = NUD_STATES.get(state & -state, "none")  # one state bit is set
    return out


def _normal(family: str, address: str) -> str:
    """One spelling of an address, to match the neighbour table's (2001:DB8::01 is 2001:db8::1)."""
    af = socket.AF_INET if family == "ipv4" else socket.AF_INET6
    try:
        return socket.inet_ntop(af, socket.inet_pton(af, address))
    except (OSError, ValueError):
        return address


def gateway_states(roots: Roots, routes: List[Route], neighbours: Neighbours, notes: List[str]) -> None:
    """Each gateway's neighbour state on the route's device ("failed": address resolution got no answer)."""
    tables: Dict[str, Dict[Tuple[int, str], str]] = {}
    for route in routes:
        if not route.gateway or not route.dev:
            continue
        ifindex = cat_int(os.path.join(roots.sys, "class/net", route.dev, "ifindex"))
        if ifindex is None:
            continue
        if route.family not in tables:
            try:
                tables[route.family] = neighbours(route.family)
            except OSError as e:
                notes.append(f"{route.family}: the neighbour table could not be read ({e.strerror or e})")
                tables[route.family] = {}
        route.gateway_state = tables[route.family].get((ifindex, _normal(route.family, route.gateway)))


RESOLVED_STUB = "127.0.0.53"


def neighbour_mac(roots: Roots, address: str, dev: Optional[str]) -> Optional[str]:
    """The link-layer address the kernel resolved for an IPv4 neighbour (/proc/net/arp, complete entries)."""
    for line in (cat(os.path.join(roots.proc, "net/arp")) or "").splitlines()[1:]:
        cols = line.split()
        if len(cols) < 6 or cols[0] != address or (dev and cols[5] != dev):
            continue
        try:
            complete = parse_int(cols[2], base=16) & 0x2  # ATF_COM
        except ValueError:
            continue
        if complete and cols[3] != "00:00:00:00:00:00":
            return cols[3].lower()
    return None


def nameservers(roots: Roots) -> List[str]:
    """resolv.conf's servers; behind systemd-resolved's stub, the upstream servers it was given."""
    def read(path: str) -> List[str]:
        return [cols[1] for cols in (line.split() for line in (cat(path) or "").splitlines())
                if len(cols) >= 2 and cols[0] == "nameserver"]

    servers = read(os.path.join(roots.etc, "resolv.conf"))
    if servers == [RESOLVED_STUB]:
        servers = read(os.path.join(roots.run, "systemd/resolve/resolv.conf")) or servers
    return servers


def collect_path(
    roots: Roots,
    *,
    live: bool,
    probe: Optional[Probe] = None,
    addresses: Optional[AddressOf] = None,
    netlink: Optional[Netlink] = None,
    neighbours: Optional[Neighbours] = None,
) -> Optional[Path]:
    """Default routes of both families; None when procfs shows no routing table at all (an unknown, not
    "no default route"). `live` allows the kernel lookups (never on a fake tree)."""
    if live and probe is None:
        probe = kernel_route_probe
    if live and neighbours is None:
        neighbours = kernel_neighbours
    texts = {family: cat(os.path.join(roots.proc, name))
             for family, name in (("ipv4", "net/route"), ("ipv6", "net/ipv6_route"))}
    if texts["ipv4"] is None and texts["ipv6"] is None:
        return None
    path = Path()
    tables = {"ipv4": parse_ipv4_routes(texts["ipv4"]), "ipv6": parse_ipv6_routes(texts["ipv6"])}
    for family, routes in tables.items():
        route = default_route(
            roots, family, routes, probe,
            addresses or (lambda fam, dev: interface_addresses(roots, fam, dev)),
            netlink or netlink_route, path.notes,
        )
        if route is not None:
            if family == "ipv4" and route.gateway:
                route.gateway_mac = neighbour_mac(roots, route.gateway, route.dev)
            path.routes.append(route)
    if neighbours is not None:
        gateway_states(roots, path.routes, neighbours, path.notes)
    path.nameservers = nameservers(roots)
    return path


AREA = "path"


def collect(run: Run) -> Optional[Path]:
    return collect_path(run.roots, live=run.roots.proc == "/proc")
