"""The netlink half of the tunnel collector: IFLA_LINKINFO, routes to the remotes, WireGuard peers.

pyroute2 (~300 ms to import) is imported inside the functions, so it loads only on machines that have a tunnel.
It owns what the two halves share (the tunnel kinds, the shape of a netlink answer); tunnels.py imports it,
never the other way.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from guestcheck.collect.path import route_get

KINDS = {"vxlan", "geneve", "gre", "gretap", "ip6gre", "ip6gretap", "ipip", "sit", "ip6tnl", "wireguard"}
# What the netlink pass says about one tunnel; keys as in Tunnel, plus gre_flags and encap_limit.
Details = Dict[str, Any]

# IFLA_INFO_DATA attributes per kind: (remote, local, lower ifindex), IPv4 then IPv6 names.
ADDRESS_ATTRS = {
    "vxlan": (("IFLA_VXLAN_GROUP", "IFLA_VXLAN_GROUP6"), ("IFLA_VXLAN_LOCAL", "IFLA_VXLAN_LOCAL6"),
              ("IFLA_VXLAN_LINK",)),
    "geneve": (("IFLA_GENEVE_REMOTE", "IFLA_GENEVE_REMOTE6"), (), ()),
}
# The IP tunnels share the kernel's IFLA_IPTUN_* / IFLA_GRE_* numbers, but pyroute2 names them per kind
# (0.7: IFLA_IPIP_, IFLA_SIT_, IFLA_IP6TNL_, IFLA_IP6GRE_): ask for each name a version may use.
PREFIXES = {
    "ipip": ("IFLA_IPIP_", "IFLA_IPTUN_"),
    "sit": ("IFLA_SIT_", "IFLA_IPTUN_"),
    "ip6tnl": ("IFLA_IP6TNL_", "IFLA_IPTUN_"),
    "gre": ("IFLA_GRE_",),
    "gretap": ("IFLA_GRE_",),
    "ip6gre": ("IFLA_IP6GRE_", "IFLA_GRE_"),
    "ip6gretap": ("IFLA_IP6GRE_", "IFLA_GRE_"),
}
for _kind, _prefixes in PREFIXES.items():
    ADDRESS_ATTRS[_kind] = tuple(tuple(p + suffix for p in _prefixes) for suffix in ("REMOTE", "LOCAL", "LINK"))
IP6_TNL_F_IGN_ENCAP_LIMIT = 0x1


def _first(data: Any, names: Tuple[str, ...]) -> Optional[str]:
    for name in names:
        value = data.get_attr(name)
        if value and value not in ("0.0.0.0", "::"):
            return str(value)
    return None


def _lookup(ipr: Any, remote: str, oif: Optional[int] = None) -> Optional[Dict[str, Any]]:
    try:
        return route_get(ipr, remote, oif)  # doctor's own route lookup (guestcheck/collect/path.py)
    except Exception:  # ENETUNREACH and the like: no route, said by the caller
        return None


def _route(ipr: Any, remote: str, links: Dict[int, Tuple[str, Optional[int]]]) -> Tuple[Optional[str], Optional[int]]:
    """The device and MTU the kernel would send the encapsulated packets to `remote` by."""
    answer = _lookup(ipr, remote)
    if answer is None:
        return None, None
    name, mtu = links.get(answer["oif"] or -1, (None, None))
    route_mtu = answer["mtu"]
    return name, (min(route_mtu, mtu) if route_mtu and mtu else route_mtu or mtu)


def _bound_route_mtu(ipr: Any, remotes: List[str], lower: int) -> Optional[Tuple[str, int]]:
    """The smallest MTU a route sets toward the remotes, looked up as the kernel does for a tunnel bound to
    device `lower` (`ip route add REMOTE dev LOWER mtu N` caps the encapsulated packets below the device's
    MTU); None where no route sets one."""
    worst: Optional[Tuple[str, int]] = None
    for remote in remotes:
        answer = _lookup(ipr, remote, lower)
        if answer is not None and answer["mtu"] and (worst is None or answer["mtu"] < worst[1]):
            worst = (remote, answer["mtu"])
    return worst


def _wireguard_endpoints(name: str) -> List[str]:
    from pyroute2 import WireGuard

    out = []
    wg = WireGuard()
    try:
        for msg in wg.info(name):
            for peer in msg.get_attr("WGDEVICE_A_PEERS") or []:
                endpoint = peer.get_attr("WGPEER_A_ENDPOINT")
                addr = endpoint.get("addr") if isinstance(endpoint, dict) else None
                if addr and addr not in ("0.0.0.0", "::"):
                    out.append(str(addr))
    finally:
        wg.close()
    return out


def _details(ipr: Any, link: Any, links: Dict[int, Tuple[str, Optional[int]]]) -> Optional[Details]:
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    if kind not in KINDS:
        return None
    data = info.get_attr("IFLA_INFO_DATA")
    d: Details = {"kind": kind, "mtu": link.get_attr("IFLA_MTU"), "admin_up": bool(link["flags"] & 1), "notes": []}
    remotes: List[str] = []
    if data is not None and kind in ADDRESS_ATTRS:
        remote_names, local_names, link_attr = ADDRESS_ATTRS[kind]
        d["remote"] = _first(data, remote_names)
        d["local"] = _first(data, local_names)
        remotes = [d["remote"]] if d["remote"] else []
        lower = next((data.get_attr(a) for a in link_attr if data.get_attr(a)), None)
        if lower and lower in links:
            d["lower"], d["lower_mtu"] = links[lower]
            d["lower_source"] = "link"
            capped = _bound_route_mtu(ipr, remotes, lower)
            if capped and (d["lower_mtu"] is None or capped[1] < d["lower_mtu"]):
                d["notes"].append(f"the route to {capped[0]} sets mtu {capped[1]}, below {d['lower']}'s "
                                  f"{d['lower_mtu']}: judged with the route's")
                d["lower_mtu"] = d["route_mtu"] = capped[1]
        prefixes = PREFIXES.get(kind, ())
        if "gre" in kind:
            d["gre_flags"] = next((data.get_attr(p + "OFLAGS") for p in prefixes if data.get_attr(p + "OFLAGS")), 0)
        if kind.startswith("ip6"):
            flags = next((data.get_attr(p + "FLAGS") for p in prefixes if data.get_attr(p + "FLAGS")), 0)
            d["encap_limit"] = not flags & IP6_TNL_F_IGN_ENCAP_LIMIT
    if kind == "wireguard":
        try:
            remotes = _wireguard_endpoints(link.get_attr("IFLA_IFNAME"))
        except Exception as e:  # no genetlink family, not allowed: judged without peers
            d["notes"].append(f"WireGuard peers not read: {type(e).__name__}: {e}")
        families = {"ipv6" if ":" in r else "ipv4" for r in remotes}
        d["family"] = "ipv6" if "ipv6" in families else ("ipv4" if families else None)
        d["remote"] = ", ".join(remotes) or None
    if "lower" not in d:
        worst: Optional[Tuple[str, int]] = None
        for remote in remotes:
            dev, mtu = _route(ipr, remote, links)
            if dev and mtu and (worst is None or mtu < worst[1]):
                worst = (dev, mtu)
        if worst:
            d["lower"], d["lower_mtu"], d["lower_source"] = worst[0], worst[1], "route"
        elif remotes:
            d["notes"].append("no route to the remote: lower device unknown")
    return d


def netlink_details(names: List[str]) -> Tuple[Dict[str, Details], str]:
    """name -> details for every tunnel netlink reports (names: those sysfs found), and a problem, or ""."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return {}, "pyroute2 is not installed (python3-pyroute2): tunnel details unknown"
    out: Dict[str, Details] = {}
    try:
        with IPRoute() as ipr:
            dump = list(ipr.get_links())
            links = {m["index"]: (m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_MTU")) for m in dump}
            for link in dump:
                try:
                    d = _details(ipr, link, links)
                except Exception as e:  # one odd device must not hide the others
                    d = {"notes": [f"netlink details failed: {type(e).__name__}: {e}"]}
                if d is not None:
                    out[link.get_attr("IFLA_IFNAME")] = d
    except Exception as e:  # pyroute2's NetlinkError besides OSError: either means "no answer"
        return out, f"netlink failed: {type(e).__name__}: {e}"
    return out, ""
