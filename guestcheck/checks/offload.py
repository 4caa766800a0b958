"""Offloads let the NIC (or the host) segment and checksum; without them the guest CPU does it per packet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from guestcheck.checks import CARRYING_TRAFFIC, PRESENT, FindingDoc, carries_traffic, present_nics
from guestcheck.facts import Facts, Feature, Nic
from guestcheck.findings import Finding, Severity
from guestcheck.text import shell_word


@dataclass(frozen=True)
class Offload:
    label: str
    finding_id: str
    features: tuple[str, ...]  # the kernel's names; the group is on when any of them is
    ethtool_name: str  # the name `ethtool -K` takes


OFFLOADS = [
    Offload("TSO", "OFFLOAD-TSO-OFF", ("tx-tcp-segmentation", "tx-tcp6-segmentation"), "tso"),
    Offload("GSO", "OFFLOAD-GSO-OFF", ("tx-generic-segmentation",), "gso"),
    Offload("GRO", "OFFLOAD-GRO-OFF", ("rx-gro",), "gro"),
    Offload("RX checksum", "OFFLOAD-RXCSUM-OFF", ("rx-checksum",), "rx"),
    Offload("TX checksum", "OFFLOAD-TXCSUM-OFF",
            ("tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6"), "tx"),
    Offload("scatter-gather", "OFFLOAD-SG-OFF", ("tx-scatter-gather",), "sg"),
]

BACKEND_FIX = (
    "On the host, give the guest a NIC backend with vnet headers so virtio-net can negotiate checksum and "
    "segmentation offloads: QEMU user-mode networking (-nic user / -netdev user, SLIRP) never offers them; "
    "use a tap backend: QEMU -netdev tap,id=n0,vhost=on,vnet_hdr=on -device virtio-net-pci,netdev=n0; libvirt "
    "<interface type='bridge'> or type='network' with <model type='virtio'/> (vhost-net is the default; load "
    "vhost_net on the host) and no <host csum='off' tso4='off'/> or <guest .../> overrides in <driver>. "
    "Then reboot the guest (offloads are negotiated when the device starts)."
)

FINDINGS = {
    o.finding_id: FindingDoc(
        f"{o.label} is off",
        "warning",
        f"With {o.label} off the guest's CPU does per-packet work the NIC or the host could do in bulk; "
        "throughput drops and softirq load rises.",
        f"ethtool -K IFACE {o.ethtool_name} on  (persist it with an ethtool hook in /etc/network/interfaces, "
        "a systemd-networkd .link file or NetworkManager's ethtool settings)",
        judged_on=CARRYING_TRAFFIC,
    )
    for o in OFFLOADS
}
FINDINGS["OFFLOAD-BACKEND-NONE"] = FindingDoc(
    "The host's NIC backend negotiated no offloads",
    "warning",
    "On virtio-net, checksum, TSO and scatter-gather show as off and [fixed] when the device on the host side "
    "offered none of them: typically QEMU user-mode networking (SLIRP) or a tap without vnet headers. "
    "Nothing can turn them on from inside the guest.",
    BACKEND_FIX,
    judged_on=PRESENT,
)
FINDINGS["OFFLOAD-UNKNOWN"] = FindingDoc(
    "Offloads could not be read",
    "info",
    "ETHTOOL_GFEATURES did not answer for this interface.",
    "Run `ethtool -k IFACE` to look by hand.",
    judged_on=CARRYING_TRAFFIC,
)


def _group(features: dict[str, Feature], offload: Offload) -> Optional[Feature]:
    present = [features[n] for n in offload.features if n in features]
    if not present:
        return None
    return Feature(on=any(f.on for f in present), fixed=all(f.fixed for f in present))


def check_nic(nic: Nic) -> list[Finding]:
    if nic.features is None:
        return [Finding("OFFLOAD-UNKNOWN", Severity.INFO, nic.name,
                        f"offloads unknown ({nic.unknown.get('features', 'not read')})", {},
                        FINDINGS["OFFLOAD-UNKNOWN"].fix)]
    out = []
    fixed_off = []
    for offload in OFFLOADS:
        if offload.ethtool_name == "gro" and nic.software_type == "veth":
            continue  # veth ships with GRO off by design (it only helps when forwarding with XDP)
        state = _group(nic.features, offload)
        if state is None or state.on:
            continue
        evidence = {n: ("on" if nic.features[n].on else "off") + (" [fixed]" if nic.features[n].fixed else "")
                    for n in offload.features if n in nic.features}
        if state.fixed:
            fixed_off.append((offload, evidence))
            continue
        out.append(Finding(offload.finding_id, Severity.WARNING, nic.name,
                           f"{offload.label} is off but can be turned on", evidence,
                           f"ethtool -K {shell_word(nic.name)} {offload.ethtool_name} on"))
    if fixed_off and nic.driver == "virtio_net":
        evidence = {}
        for _, ev in fixed_off:
            evidence.update(ev)
        labels = ", ".join(o.label for o, _ in fixed_off)
        out.append(Finding("OFFLOAD-BACKEND-NONE", Severity.WARNING, nic.name,
                           f"{labels} off and fixed: the host's backend negotiated no offloads "
                           "(user-mode networking, or a tap without vnet headers)", evidence, BACKEND_FIX))
    return out


def run(facts: Facts) -> list[Finding]:
    out = []
    for nic in present_nics(facts):
        found = check_nic(nic)
        # what the host's backend negotiated is the VM's configuration; the rest only costs while packets flow
        out.extend(f for f in found if carries_traffic(nic) or FINDINGS[f.id].judged_on == PRESENT)
    return out
