"""What each NIC driver means inside a VM: paravirtual, an SR-IOV VF, emulated hardware, software.

Tables, one row per driver, so adding a driver is one line. `classify` is pure: it gets what
sysfs and the ioctl said and returns the kind with the reason that decided it.
"""

from __future__ import annotations

from typing import Optional

PARAVIRTUAL = {
    "virtio_net": "virtio-net",
    "vmxnet3": "VMware vmxnet3",
    "hv_netvsc": "Hyper-V netvsc",
    "vif": "Xen netfront",
    "xen-netfront": "Xen netfront",
    "ena": "AWS ENA",
    "gve": "Google gVNIC",
    "mana": "Azure MANA",
    "ibmveth": "IBM PowerVM virtual ethernet",
    "ibmvnic": "IBM PowerVM vNIC",
}

SRIOV_VF = {
    "ixgbevf": "Intel 82599/X540/X550 VF",
    "iavf": "Intel adaptive VF",
    "i40evf": "Intel XL710 VF",
    "igbvf": "Intel 82576/I350 VF",
    "bnxt_en": None,  # VF only when the PCI id says so
    "mlx4_core": None,
    "mlx4_en": None,
    "mlx5_core": None,
    "qede": None,
    "nfp": None,
    "ice": None,
    "enic": None,
}

# PCI ids of virtual functions whose driver also runs physical functions.
VF_PCI_IDS = {
    "15b3:1004": "Mellanox ConnectX-3 VF",
    "15b3:1014": "Mellanox ConnectX-4 VF",
    "15b3:1016": "Mellanox ConnectX-4 Lx VF",
    "15b3:1018": "Mellanox ConnectX-5 VF",
    "15b3:101a": "Mellanox ConnectX-5 Ex VF",
    "15b3:101c": "Mellanox ConnectX-6 VF",
    "15b3:101e": "Mellanox ConnectX family VF",
    "14e4:16dc": "Broadcom NetXtreme-E VF",
    "14e4:16d3": "Broadcom NetXtreme-E VF",
    "14e4:1807": "Broadcom NetXtreme-E VF",
    "14e4:1806": "Broadcom NetXtreme-E VF",
    "8086:1889": "Intel E810 VF",
}

# Drivers for hardware that hypervisors emulate. Only QEMU-era antiques: always emulated in a VM.
EMULATED = {
    "8139cp": "Realtek RTL8139 (C+)",
    "8139too": "Realtek RTL8139",
    "ne2k-pci": "NE2000",
    "pcnet32": "AMD PCnet",
    "tulip": "DEC 21140 (Hyper-V legacy adapter)",
    "de2104x": "DEC 21040",
    "e100": "Intel 8255x",
    "e1000": "Intel 82540EM (e1000)",
    "e1000e": "Intel 82574L (e1000e)",
    "igb": "Intel 82576 (igb)",
    "vmxnet": "VMware vlance",
    "sungem": "Sun GEM",
}

# Drivers that also run real hardware that someone may pass through to a VM: emulated only when the
# PCI subsystem vendor is a hypervisor's, or the device is one of the models hypervisors emulate.
REAL_HARDWARE_TOO = {"e1000e", "igb", "e100", "tulip"}
HYPERVISOR_SUBSYSTEM_VENDORS = {"1af4": "QEMU/Red Hat", "15ad": "VMware", "1ab8": "Parallels", "80ee": "VirtualBox"}
EMULATED_MODELS = {"8086:100e", "8086:10d3", "8086:10c9", "8086:1229", "8086:1209", "1011:0009", "10ec:8139"}

SOFTWARE_DRIVERS = {
    "veth": "veth",
    "bridge": "bridge",
    "bonding": "bond",
    "802.1Q VLAN Support": "vlan",
    "tun": "tun",
    "macvlan": "macvlan",
    "macvtap": "macvtap",
    "ipvlan": "ipvlan",
    "vxlan": "vxlan",
    "geneve": "geneve",
    "ifb": "ifb",
    "dummy": "dummy",
    "wireguard": "wireguard",
    "openvswitch": "openvswitch",
    "team": "team",
    "vrf": "vrf",
    "nlmon": "nlmon",
    "gre": "gre",
    "ip_gre": "gre",
    "ipip": "ipip",
    "sit": "sit",
    "ip6_tunnel": "ip6tnl",
}

# A host-side fix: one labelled line per platform (the finding's fix_on is "host").
# The switch to a paravirtual NIC, one labelled line per host tool (guestcheck.judge.virt.host_tools names the
# ones the platform can have, so a VMware guest is not told to edit libvirt XML).
EMULATED_FIX_HEAD = ("on the host: switch the NIC to a paravirtual one, then reboot the guest (Debian/Ubuntu guests "
                     "have virtio_net and vmxnet3 built in; the interface may get a new name)")
EMULATED_FIX_LINES = {
    "libvirt": "libvirt: in the domain XML interface set <model type='virtio'/> (virsh edit DOMAIN)",
    "qemu": "QEMU: replace the NIC with -device virtio-net-pci,netdev=NET0 (or -nic ...,model=virtio-net-pci)",
    "proxmox": "Proxmox: qm set VMID --net0 virtio,bridge=vmbr0 (Hardware > Network Device > Model: VirtIO "
               "(paravirtualized))",
    "vmware": "VMware: set the adapter type to VMXNET3 (ethernetN.virtualDev = \"vmxnet3\" in the .vmx, with the VM "
              "powered off)",
    "virtualbox": "VirtualBox: VBoxManage modifyvm VM --nictype1 virtio (Settings > Network > Adapter Type: "
                  "Paravirtualized Network (virtio-net))",
    "hyperv": "Hyper-V: replace the Legacy Network Adapter with a Network Adapter (synthetic, hv_netvsc): "
              "Remove-VMNetworkAdapter/Add-VMNetworkAdapter on a generation 1 VM, or use generation 2",
    "provider": "provider: choose an instance or machine type whose NIC is paravirtual (ENA, gVNIC, virtio-net, "
                "accelerated networking)",
}
DEFAULT_EMULATED_TOOLS = ("libvirt", "qemu", "proxmox")


def emulated_fix(tools: tuple = DEFAULT_EMULATED_TOOLS) -> str:
    """The host fix for an emulated NIC, naming only the tools in `tools` (all KVM ones when none is known)."""
    known = [t for t in tools if t in EMULATED_FIX_LINES] or list(DEFAULT_EMULATED_TOOLS)
    return "\n".join([EMULATED_FIX_HEAD] + [EMULATED_FIX_LINES[t] for t in known])


EMULATED_FIX = emulated_fix()


def classify(
    *,
    name: str,
    driver: Optional[str],
    bus: str,
    pci_id: Optional[str],
    pci_subsystem_id: Optional[str],
    has_device: bool,
    has_physfn: bool,
    software_type: Optional[str],
    link_type: Optional[int],
    in_vm: bool,
) -> tuple[str, str]:
    """(kind, reason): the kind of NIC and the evidence that decided it."""
    if link_type == 772 or name == "lo":
        return "software", "loopback"
    if not has_device:
        what = software_type or (SOFTWARE_DRIVERS.get(driver or "") if driver else None)
        return "software", f"no backing device ({what or 'virtual interface'})"
    if driver in PARAVIRTUAL:
        return "paravirtual", f"driver {driver}: {PARAVIRTUAL[driver]}"
    if has_physfn:
        return "sriov-vf", "sysfs device/physfn: a virtual function of a local physical NIC"
    if pci_id in VF_PCI_IDS:
        return "sriov-vf", f"PCI {pci_id}: {VF_PCI_IDS[pci_id]}"
    if SRIOV_VF.get(driver):
        return "sriov-vf", f"driver {driver}: {SRIOV_VF[driver]}"
    if driver in EMULATED:
        sub_vendor = (pci_subsystem_id or "").split(":", 1)[0]
        if sub_vendor in HYPERVISOR_SUBSYSTEM_VENDORS:
            return "emulated", (
                f"driver {driver} ({EMULATED[driver]}) with PCI subsystem vendor {sub_vendor} "
                f"({HYPERVISOR_SUBSYSTEM_VENDORS[sub_vendor]})"
            )
        if in_vm and (driver not in REAL_HARDWARE_TOO or pci_id in EMULATED_MODELS):
            return "emulated", f"driver {driver} ({EMULATED[driver]}) inside a virtual machine"
        return "physical", f"driver {driver} on what looks like real hardware (PCI {pci_id or '?'})"
    if bus == "pci" and driver:
        return ("physical", f"PCI device with driver {driver}") if not in_vm else (
            "physical",
            f"PCI device with driver {driver} passed through to the VM",
        )
    if driver is None:
        return "unknown", "no driver is bound to the device"
    return "unknown", f"driver {driver} on bus {bus} is not in guestcheck's tables"
