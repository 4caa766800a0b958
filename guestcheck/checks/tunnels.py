"""Overlays and tunnels: an MTU that leaves no room for the encapsulation, and VXLAN's checksum-offload stalls."""

from __future__ import annotations

from typing import Optional

from guestcheck.checks import PRESENT, FindingDoc
from guestcheck.checks.fixes import write_file
from guestcheck.facts import Facts, Tunnel
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.kernelversion import kernel_version
from guestcheck.names import file_safe_ifname
from guestcheck.text import shell_word

MIN_IPV4_MTU = 68
CSUM_FEATURE = "tx-checksum-ip-generic"
# projectcalico/felix #2811 (fixes projectcalico/calico #3145) turns VXLAN checksum offload off on kernels
# before 5.7, where it broke with iptables MASQUERADE --random-fully; calico #8746 turned it back on above.
CSUM_FIXED_IN = (5, 7)
CSUM_SOURCES = ("projectcalico/calico #3145, projectcalico/felix #2811 (kernels < 5.7), "
                "flannel-io/flannel #1282 and #1929")

FINDINGS = {
    "TUNNEL-MTU": FindingDoc(
        "A tunnel's MTU leaves no room for its encapsulation",
        "warning",
        "Every packet a tunnel sends grows by its outer headers: vxlan 50 bytes over IPv4 / 70 over IPv6, "
        "geneve 50 / 70 plus options, gre 24 (+4 per key, checksum or sequence option), gretap 38, ipip and sit "
        "20, ip6tnl 40 (+8 for the encapsulation-limit option it adds by default), wireguard 60 / 80. When the "
        "tunnel's MTU plus that is larger than the MTU of the device the packets leave by (the tunnel's own "
        "lower device, or the route to its remote), full-size packets are fragmented or, with DF set, dropped: "
        "small requests work, bulk transfers stall (the classic 'ping works, the download hangs'), and "
        "path-MTU discovery through the tunnel often fails silently. The lower device comes from the tunnel's "
        "dev/link setting, sysfs lower_* links, or the route to the remote; a route toward the remote that "
        "sets its own `mtu` caps the packets below the device's MTU (a tunnel bound to a device too). A "
        "WireGuard device without peers is judged with IPv4 outer headers.",
        "ip link set dev TUNNEL mtu N with N = the lower device's MTU minus the overhead; or raise the lower "
        "device's MTU if the network underneath carries larger frames. Keep it where the tunnel is configured "
        "(the CNI or overlay's MTU setting, netplan/systemd-networkd MTUBytes=, wg-quick's MTU =).",
        judged_on=PRESENT,
    ),
    "VXLAN-TX-CSUM": FindingDoc(
        "VXLAN transmit checksum offload, known to corrupt checksums on some kernels",
        "info",
        "With tx-checksum-ip-generic on, the VXLAN device leaves the inner checksum to be completed later. "
        "On kernels before 5.7, combined with iptables MASQUERADE --random-fully (Kubernetes' kube-proxy, "
        "Calico, flannel), the NAT rewrote ports without fixing the checksum: receivers discarded the packets "
        "and TCP through the overlay stalled for 63 s (SYN retransmits 1+2+4+8+16+32 s) or 3 s "
        "(projectcalico/calico #3145; Calico disables the offload below 5.7: projectcalico/felix #2811). "
        "Flannel's users still report corrupted VXLAN checksums behind NAT on newer kernels "
        "(flannel-io/flannel #1929, #2152), where no kernel version bounds it. So: a warning on kernels "
        "before 5.7; info on newer ones, where it only matters if you see the symptom. How to tell: TCP "
        "connections through the overlay that hang about 63 s (or 3 s) before connecting, and "
        "`nstat -az UdpInCsumErrors` (or TcpInCsumErrors) rising on the receiving node.",
        "ethtool -K VXLAN_DEV tx-checksum-ip-generic off (costs CPU: the kernel computes checksums in "
        "software); to keep it, a udev rule (flannel's troubleshooting guide) in "
        "/etc/udev/rules.d/90-guestcheck-vxlan-VXLAN_DEV.rules: SUBSYSTEM==\"net\", "
        "ACTION==\"add|change|move\", ENV{INTERFACE}==\"VXLAN_DEV\", "
        "RUN+=\"/usr/sbin/ethtool -K VXLAN_DEV tx-checksum-ip-generic off\"",
        judged_on=PRESENT,
    ),
}


def mtu_finding(t: Tunnel) -> Optional[Finding]:
    """TUNNEL-MTU for one tunnel (NIC-DROPS names it as the cause of the same device's failed sends)."""
    if t.mtu is None or t.overhead is None or not t.lower_mtu:
        return None
    if t.mtu + t.overhead <= t.lower_mtu:
        return None
    fits = t.lower_mtu - t.overhead
    evidence = {"kind": t.kind, "mtu": t.mtu, "overhead": t.overhead, "overhead_detail": t.overhead_detail,
                "family": t.family, "remote": t.remote, "lower": t.lower, "lower_mtu": t.lower_mtu,
                "lower_source": t.lower_source, "fits": fits}
    if t.route_mtu:
        evidence["route_mtu"] = t.route_mtu
    if t.notes:
        evidence["notes"] = t.notes
    below = f"{t.lower} MTU {t.lower_mtu}"
    if t.route_mtu and t.route_mtu == t.lower_mtu:
        below = f"the route to {t.remote} via {t.lower}, mtu {t.route_mtu}"
    if fits >= MIN_IPV4_MTU:
        fix = f"ip link set dev {shell_word(t.name)} mtu {fits}"
    elif t.route_mtu and t.route_mtu == t.lower_mtu:
        fix = ""  # the route's mtu is the limit (said in the summary): raising the device's would not lift it
        below += " (raise the route's mtu)"
    else:
        fix = f"ip link set dev {shell_word(t.lower or '')} mtu {t.mtu + t.overhead}"
    return Finding(
        "TUNNEL-MTU", Severity.WARNING, t.name,
        f"{t.kind} MTU {t.mtu} + {t.overhead} bytes of encapsulation > {below}: {fits} fits", evidence, fix)


def _udev_rule(name: str) -> str:
    """The command that keeps the workaround across reboots (flannel's troubleshooting guide), where the name
    may sit inside a udev rule and its file name (names.file_safe_ifname, as tune's own rules)."""
    if not file_safe_ifname(name):
        return ""
    rule = (f'SUBSYSTEM=="net", ACTION=="add|change|move", ENV{{INTERFACE}}=="{name}", '
            f'RUN+="/usr/sbin/ethtool -K {name} {CSUM_FEATURE} off"')
    return "\n" + write_file(f"/etc/udev/rules.d/90-guestcheck-vxlan-{name}.rules", [rule])


def _csum_finding(facts: Facts, t: Tunnel) -> Optional[Finding]:
    nic = facts.nic(t.name)
    feature = (nic.features or {}).get(CSUM_FEATURE) if nic else None
    if feature is None or not feature.on or feature.fixed:
        return None
    version = kernel_version(facts.host.kernel)
    affected = version is not None and version < CSUM_FIXED_IN
    evidence = {"feature": CSUM_FEATURE, "on": True, "kernel": facts.host.kernel, "sources": CSUM_SOURCES}
    fix = f"ethtool -K {shell_word(t.name)} {CSUM_FEATURE} off" + _udev_rule(t.name)
    if affected:
        return Finding("VXLAN-TX-CSUM", Severity.WARNING, t.name,
                       f"VXLAN TX checksum offload on, kernel {facts.host.kernel} (< 5.7): NAT'ed traffic "
                       "through it can stall 63 s (projectcalico/calico #3145)", evidence, fix)
    return Finding("VXLAN-TX-CSUM", Severity.INFO, t.name,
                   "VXLAN TX checksum offload on: behind NAT some setups see corrupted checksums "
                   "(flannel-io/flannel #1929); turn it off only if TCP through the overlay stalls ~63 s or "
                   "UdpInCsumErrors rises on the receiver", evidence, fix)


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [("TUNNEL-MTU*", ("mtu",))]


def run(facts: Facts, judged: Judged) -> list[Finding]:
    out = []
    for t in facts.tunnels:
        found = mtu_finding(t)
        if found:
            out.append(found)
        if t.kind == "vxlan":
            found = _csum_finding(facts, t)
            if found:
                out.append(found)
    return out
