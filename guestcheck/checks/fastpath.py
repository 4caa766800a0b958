"""The fast path is really in use: Azure's VF carries the traffic, every network PCI function has a driver,
ENA's driver can count its limits, and a GCE VM uses gVNIC where it could.

Sources:
- Linux drivers/net/hyperv/netvsc_drv.c: netvsc pairs the VF as its lower device (netdev_master_upper_dev_link,
  so the VF's `master` is the synthetic interface) and counts in `ethtool -S`: vf_rx_packets, vf_tx_packets,
  vf_rx_bytes, vf_tx_bytes (vf_stats[]) for the VF, and tx_queue_N_packets / rx_queue_N_packets for each
  VMBus channel, the synthetic path.
- Linux drivers/net/ethernet/microsoft/mana/gdma.h: MANA is PCI vendor 1414 (Microsoft), device 00ba (the VF
  a guest sees; 00b9 and 00c1 are physical functions); the driver is `mana`, CONFIG_MICROSOFT_MANA (Linux 5.13).
  A kernel without it leaves the VM on the synthetic path (microsoft/lisa PR #4673, cockroachdb #173178).
- amzn/amzn-drivers kernel/linux/ena/RELEASENOTES.md: r2.2.10 "Add new device statistics to ethtool" (the
  *_allowance_exceeded counters), r2.8.1 "Add conntrack customer metric to ethtool" (conntrack_allowance_available).
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

from guestcheck.checks import PRESENT, FindingDoc, carries_traffic, present_nics
from guestcheck.facts import Facts, Nic, PciFunction
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.quantities import parse_int
from guestcheck.text import shell_word

# --- Azure accelerated networking ---

NETVSC = "hv_netvsc"
AZURE_VF_DRIVERS = {"mlx4_en", "mlx4_core", "mlx5_core", "mana"}  # what Azure's VFs bind (Mellanox, MANA)
VF_COUNTERS = ("vf_rx_packets", "vf_tx_packets")  # netvsc_drv.c vf_stats[]
_CHANNEL_PACKETS = re.compile(r"^(rx|tx)_queue_[0-9]+_packets$")  # netvsc_drv.c netvsc_get_strings(), per channel
MIN_SYNTHETIC_PACKETS = 1000  # the synthetic path carried real traffic, not only the first packets of boot

MANA_IDS = {"1414:00ba": "MANA virtual function", "1414:00b9": "MANA physical function",
            "1414:00c1": "MANA physical function"}

# --- ENA ---

ENA_ALLOWANCE = ("bw_in_allowance_exceeded", "bw_out_allowance_exceeded", "pps_allowance_exceeded",
                 "conntrack_allowance_exceeded", "linklocal_allowance_exceeded")
ENA_CONNTRACK_GAUGE = "conntrack_allowance_available"
ENA_ALLOWANCE_VERSION = (2, 2, 10)
ENA_CONNTRACK_VERSION = (2, 8, 1)
# "2.8.1g": the GitHub driver's version
_ENA_VERSION = re.compile(r"^([0-9]{1,9})\.([0-9]{1,9})\.([0-9]{1,9})[a-zA-Z]?$")

# --- Google ---

GVNIC_FIX = "\n".join([
    "on the host: gVNIC needs a new instance (an existing instance's NIC type cannot be changed) from an image "
    "marked for it, whose kernel has the gve driver (Linux 5.3+)",
    "gcloud: gcloud compute images create IMAGE --source-disk=DISK --source-disk-zone=ZONE --guest-os-features=GVNIC",
    "gcloud: gcloud compute instances create NAME --image=IMAGE --network-interface=nic-type=GVNIC "
    "(keep the machine type; gVNIC is needed for Tier_1 networking and for the third-generation machine types)",
])

AZURE_AN_FIX = "\n".join([
    "on the host: turn accelerated networking on for the VM's NIC (the VM is deallocated while it changes)",
    "Azure CLI: az vm deallocate -g RG -n VM && az network nic update -g RG -n NIC --accelerated-networking "
    "true && az vm start -g RG -n VM",
    "Azure portal: VM > Networking > the NIC > Accelerated networking: Enabled (stop the VM first)",
])

FINDINGS = {
    "AZURE-VF-MISSING": FindingDoc(
        "Azure accelerated networking is not in use",
        "warning",
        "On Azure the fast path is an SR-IOV VF (Mellanox mlx4/mlx5 or MANA) that hv_netvsc pairs with the "
        "synthetic interface as its lower device. Without it every packet takes the synthetic VMBus path: more "
        "latency, more CPU, and a lower ceiling, while the platform reports the VM as healthy (azure-docs "
        "#60667). A VF that is there but not paired (no master/lower link) carries nothing either.",
        AZURE_AN_FIX,
        judged_on=PRESENT,
        fix_on="host",
    ),
    "AZURE-VF-IDLE": FindingDoc(
        "Azure's VF is paired but carries no traffic",
        "critical",
        "hv_netvsc counts what goes through its VF (vf_rx_packets, vf_tx_packets in `ethtool -S`) apart from "
        "what goes through its own VMBus channels (rx/tx_queue_N_packets). All traffic on the channels and none "
        "on the VF means the VF is down or not usable: the slow path in disguise (cockroachdb #173178: RPC "
        "latency to seconds).",
        "ip link set VF up (the VF named in the evidence); check `dmesg | grep -i -e mana -e mlx -e 'VF '` for "
        "a failed probe; on the host, restart the VM to get a new VF",
        judged_on=PRESENT,
    ),
    "AZURE-VF-PAIRED": FindingDoc(
        "Azure accelerated networking is in use",
        "ok",
        "hv_netvsc has its VF as a lower device, and the VF carries traffic.",
        "Nothing to fix.",
        judged_on=PRESENT,
        fix_on="",
    ),
    "MANA-NO-DRIVER": FindingDoc(
        "Azure's MANA NIC has no driver",
        "critical",
        "The Microsoft Azure Network Adapter (PCI 1414:00ba) is there but no driver took it: the kernel was "
        "built without CONFIG_MICROSOFT_MANA (Linux 5.13+), or the `mana` module is not loaded or failed its "
        "probe. Traffic then takes the slow synthetic path (microsoft/lisa PR #4673).",
        "modprobe mana (and list it in /etc/modules-load.d/); where the module is missing, boot a kernel built "
        "with CONFIG_MICROSOFT_MANA=m (Debian and Ubuntu's cloud/azure kernels have it)",
    ),
    "PCI-NIC-NO-DRIVER": FindingDoc(
        "A network PCI device has no driver",
        "critical",
        "A PCI function of the network class (0x02) has no driver bound, so it never becomes an interface: an "
        "SR-IOV VF passed to the VM whose driver is missing, or a NIC this kernel has no driver for. A VF of a "
        "local physical function (device/physfn: a host's VF waiting to be passed to a guest) is not judged.",
        "modprobe MODULE (the driver for the PCI id, see `lspci -nnk -s ADDRESS`), then "
        "echo ADDRESS > /sys/bus/pci/drivers_probe to bind it",
    ),
    "ENA-DRIVER-OLD": FindingDoc(
        "The ENA driver is too old for its limit counters",
        "info",
        "AWS reports when an instance hits its bandwidth, packets-per-second, conntrack or link-local limits in "
        "ENA's *_allowance_exceeded counters (driver 2.2.10+) and the conntrack headroom in "
        "conntrack_allowance_available (2.8.1+) (amzn/amzn-drivers RELEASENOTES.md). An older driver cannot "
        "say that the instance is being shaped.",
        "Upgrade the kernel (the distribution's newest carries a newer ena), or install the driver from "
        "amzn/amzn-drivers kernel/linux/ena with DKMS; then reboot",
    ),
    "GCE-NOT-GVNIC": FindingDoc(
        "A Google Compute Engine VM on virtio-net instead of gVNIC",
        "info",
        "GCE offers two virtual NICs: virtio-net and Google's gVNIC (driver gve). gVNIC is the faster one and "
        "the only one for Tier_1 bandwidth and for the newer machine types.",
        GVNIC_FIX,
        judged_on=PRESENT,
        fix_on="host",
    ),
}


def cloud_of(judged: Judged) -> Optional[str]:
    """The cloud, as the judging step decided it."""
    return judged.virt.cloud


def _stats_sum(stats: dict, names) -> int:
    return sum(v for k, v in stats.items() if k in names and isinstance(v, int))


def _vf_of(facts: Facts, netvsc: Nic) -> Tuple[Optional[Nic], str]:
    """(the VF, how it was found): paired through the lower/master links, or only matching by MAC."""
    for nic in facts.nics:
        if nic.name != netvsc.name and (nic.master == netvsc.name or nic.name in (netvsc.lowers or [])):
            return nic, "paired"
    if netvsc.mac:
        for nic in facts.nics:
            if nic.name != netvsc.name and nic.driver in AZURE_VF_DRIVERS and nic.mac == netvsc.mac:
                return nic, "unpaired"
    return None, ""


def _azure(facts: Facts, judged: Judged) -> List[Finding]:
    out = []
    azure = cloud_of(judged) == "microsoft"
    for nic in present_nics(facts, judged):
        if nic.driver != NETVSC:
            continue
        vf, how = _vf_of(facts, nic)
        evidence = {"driver": nic.driver, "vf": vf.name if vf else None, "vf_driver": vf.driver if vf else None,
                    "pairing": how or "none", "cloud": cloud_of(judged)}
        if vf is not None:
            owners = [o.line() for o in judged.owners("link", vf.name)]
            if owners:
                evidence["vf_other_owners"] = owners  # NetworkManager on a VF: duplicate IPs (azure-vm-utils #106)
        if vf is None and not azure:
            continue  # Hyper-V outside Azure: no VF is the usual case
        if vf is None or how == "unpaired":
            summary = (f"{vf.name} ({vf.driver}) has {nic.name}'s MAC but is not paired with it" if vf else
                       "no VF: accelerated networking is off, traffic takes the synthetic VMBus path")
            out.append(Finding("AZURE-VF-MISSING", Severity.WARNING, nic.name, summary, evidence,
                               FINDINGS["AZURE-VF-MISSING"].fix, "host"))
            continue
        stats = nic.driver_stats
        if stats is None or not all(k in stats for k in VF_COUNTERS):
            evidence["note"] = "hv_netvsc gave no VF counters (ethtool -S): whether the VF carries traffic is unknown"
            out.append(Finding("AZURE-VF-PAIRED", Severity.OK, nic.name, f"VF {vf.name} ({vf.driver}) paired",
                               evidence, ""))
            continue
        vf_packets = _stats_sum(stats, VF_COUNTERS)
        synthetic = sum(v for k, v in stats.items() if _CHANNEL_PACKETS.match(k) and isinstance(v, int))
        evidence.update(vf_packets=vf_packets, synthetic_packets=synthetic,
                        counters={k: stats[k] for k in ("vf_rx_packets", "vf_tx_packets", "vf_rx_bytes",
                                                        "vf_tx_bytes") if k in stats})
        if vf_packets == 0 and synthetic >= MIN_SYNTHETIC_PACKETS:
            state = "" if carries_traffic(vf) else f" (VF link {vf.operstate or 'state unknown'})"
            out.append(Finding("AZURE-VF-IDLE", Severity.CRITICAL, nic.name,
                               f"VF {vf.name} carried 0 packets since boot, the synthetic path {synthetic}{state}",
                               evidence, f"ip link set {shell_word(vf.name)} up", "guest", hint=VF_IDLE_HINT))
        else:
            out.append(Finding("AZURE-VF-PAIRED", Severity.OK, nic.name,
                               f"VF {vf.name} ({vf.driver}) paired, {vf_packets} packets on it since boot",
                               evidence, ""))
    return out


# Looking is not fixing: where the VF stays idle, what to look at is advice, not part of the pasted fix.
VF_IDLE_HINT = ("If it stays idle, look for a failed probe (dmesg | grep -i -e mana -e mlx -e 'VF '); on the host, "
                "restart the VM to get a new VF.")


# PCI ids of NICs a guest meets, and the module that drives them (the kernel's pci_device_id tables)
PCI_MODULES = {
    "1414:00ba": "mana", "1414:00b9": "mana", "1414:00c1": "mana",
    "1d0f:ec20": "ena", "1d0f:ec21": "ena", "1d0f:0ec2": "ena", "1d0f:1ec2": "ena",
    "1ae0:0042": "gve",
    "1af4:1000": "virtio_pci", "1af4:1041": "virtio_pci",
    "15ad:07b0": "vmxnet3",
    "8086:100e": "e1000", "8086:10d3": "e1000e", "8086:10c9": "igb",
    "8086:10ed": "ixgbevf", "8086:1515": "ixgbevf", "8086:154c": "iavf", "8086:1889": "iavf",
    "15b3:1004": "mlx4_core", "15b3:1014": "mlx5_core", "15b3:1016": "mlx5_core", "15b3:1018": "mlx5_core",
    "15b3:101a": "mlx5_core", "15b3:101c": "mlx5_core", "15b3:101e": "mlx5_core",
    "10ec:8139": "8139cp",
}


def _probe_fix(fn: PciFunction, module: Optional[str]) -> str:
    lines = [f"modprobe {module}"] if module else [f"lspci -nnk -s {shell_word(fn.address)}"]
    lines.append(f"echo {shell_word(fn.address)} > /sys/bus/pci/drivers_probe")
    return "\n".join(lines)


def _unbound(facts: Facts, judged: Judged) -> List[Finding]:
    out = []
    for fn in facts.pci_network:
        if fn.driver is not None or fn.has_physfn:
            continue
        module = PCI_MODULES.get(fn.pci_id or "")
        evidence = {"address": fn.address, "class": fn.class_code, "pci_id": fn.pci_id,
                    "pci_subsystem_id": fn.pci_subsystem_id, "driver": None, "module": module}
        if fn.pci_id in MANA_IDS:
            evidence.update(kernel_option="CONFIG_MICROSOFT_MANA (Linux 5.13+)", module="mana")
            fix = "\n".join([
                "modprobe mana",
                "echo mana > /etc/modules-load.d/mana.conf",
                f"echo {shell_word(fn.address)} > /sys/bus/pci/drivers_probe",
            ])
            out.append(Finding("MANA-NO-DRIVER", Severity.CRITICAL, fn.address,
                               f"{MANA_IDS[fn.pci_id or '']} {fn.pci_id} without a driver: load the mana module "
                               "(kernel option CONFIG_MICROSOFT_MANA); until then traffic takes the slow path",
                               evidence, fix, "guest"))
            continue
        what = f"module {module}" if module else "no module known to guestcheck for this PCI id"
        out.append(Finding("PCI-NIC-NO-DRIVER", Severity.CRITICAL, fn.address,
                           f"network PCI device {fn.pci_id or '?'} has no driver bound ({what})",
                           evidence, _probe_fix(fn, module), "guest"))
    return out


def ena_version(text: Optional[str], kernel: str) -> Optional[Tuple[int, int, int]]:
    """The GitHub driver's version ("2.8.1g"); None for the in-tree driver, which reports the kernel release."""
    if not text or text == kernel:
        return None
    match = _ENA_VERSION.match(text.strip())
    if not match:
        return None
    version = (parse_int(match.group(1)), parse_int(match.group(2)), parse_int(match.group(3)))
    return version if version[0] < 3 else None  # ENA versions are 1.x and 2.x; 3+ is a kernel release


ENA_DKMS_HINT = ("Install the ena driver from github.com/amzn/amzn-drivers (kernel/linux/ena, with DKMS) as its "
                 "README says, then reboot.")


def kernel_upgrade(os_name: str, kernel: str) -> List[str]:
    """The distribution's newest kernel of the running flavour (it carries a newer in-tree ena); elsewhere the
    GitHub driver, which the guest's admin builds with DKMS as its README says."""
    name = os_name.lower()
    flavour = re.search(r"-[0-9]+-([a-z0-9-]+)$", kernel)
    if ("debian" in name or "ubuntu" in name) and flavour:
        return ["apt-get update", f"apt-get install -y --only-upgrade {shell_word('linux-image-' + flavour.group(1))}"]
    if any(d in name for d in ("amazon linux", "red hat", "rhel", "centos", "rocky", "alma", "fedora")):
        return ["yum update -y kernel"]
    return []  # no command to give: ENA_DKMS_HINT says what to do


def _ena(facts: Facts, judged: Judged) -> List[Finding]:
    out = []
    for nic in present_nics(facts, judged):
        if nic.driver != "ena":
            continue
        version = ena_version(nic.driver_version, facts.host.kernel)
        stats = nic.driver_stats
        missing = [k for k in (*ENA_ALLOWANCE, ENA_CONNTRACK_GAUGE) if stats is not None and k not in stats]
        needed = None
        if version is not None and version < ENA_ALLOWANCE_VERSION:
            needed = ENA_ALLOWANCE_VERSION
        elif version is not None and version < ENA_CONNTRACK_VERSION:
            needed = ENA_CONNTRACK_VERSION
        elif version is None and missing:
            needed = ENA_ALLOWANCE_VERSION if any(k in ENA_ALLOWANCE for k in missing) else ENA_CONNTRACK_VERSION
        if needed is None:
            continue
        need = ".".join(map(str, needed))
        evidence = {"driver_version": nic.driver_version, "needs": need, "missing_counters": missing,
                    "kernel": facts.host.kernel}
        upgrade = kernel_upgrade(facts.host.os, facts.host.kernel)
        out.append(Finding("ENA-DRIVER-OLD", Severity.INFO, nic.name,
                           f"ENA driver {nic.driver_version or '?'}: the limit counters need {need} or newer"
                           + (f" (missing: {', '.join(missing)})" if missing else ""),
                           evidence, "\n".join([*upgrade, "reboot"]) if upgrade else "",
                           "guest" if upgrade else "", hint="" if upgrade else ENA_DKMS_HINT))
    return out


def _gce(facts: Facts, judged: Judged) -> List[Finding]:
    if cloud_of(judged) != "google":
        return []
    out = []
    for nic in present_nics(facts, judged):
        if nic.driver == "virtio_net":
            out.append(Finding("GCE-NOT-GVNIC", Severity.INFO, nic.name,
                               "virtio-net on Google Compute Engine: gVNIC is faster where the machine type offers it",
                               {"driver": nic.driver, "cloud": "google", "pci_id": nic.pci_id},
                               GVNIC_FIX, "host"))
    return out


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [("AZURE-*", ("link",))]


def run(facts: Facts, judged: Judged) -> list[Finding]:
    return _azure(facts, judged) + _unbound(facts, judged) + _ena(facts, judged) + _gce(facts, judged)
