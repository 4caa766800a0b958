"""Network-class PCI functions from /sys/bus/pci/devices, whether a driver took them or not, and the interfaces
each became (a virtio-net function's under its virtioN device).

/sys/class/net lists interfaces, and a device no driver bound never becomes one: an SR-IOV VF whose driver
is missing (Azure's MANA on a kernel without CONFIG_MICROSOFT_MANA) is only visible here.
"""

from __future__ import annotations

import os
import re
from typing import List

from guestcheck.collect.area import Run
from guestcheck.collect.fs import cat, exists, link_name, listdir
from guestcheck.collect.nics import pci_ids
from guestcheck.facts import PciFunction
from guestcheck.roots import Roots

NETWORK_CLASS = "0x02"  # PCI base class 02h: network controller (PCI Code and ID Assignment, section 1.3)
MAX_FUNCTIONS = 4096  # more PCI functions than any VM has: a hostile or broken tree is cut off here
# virtio-pci binds the function and creates a virtio device under it (0000:00:03.0/virtio0); the netdev is that
# device's: 0000:00:03.0/virtio0/net/ens3, not the function's own net/
VIRTIO_CHILD = re.compile(r"virtio[0-9]+")


def interfaces_of(directory: str) -> List[str]:
    """The interfaces a PCI function became: its own net/ entries, and those of the virtio device on it."""
    names = listdir(os.path.join(directory, "net"))
    for child in listdir(directory):
        if VIRTIO_CHILD.fullmatch(child):
            names += [n for n in listdir(os.path.join(directory, child, "net")) if n not in names]
    return names


def collect_pci_network(roots: Roots) -> List[PciFunction]:
    base = os.path.join(roots.sys, "bus/pci/devices")
    out = []
    for address in listdir(base)[:MAX_FUNCTIONS]:
        directory = os.path.join(base, address)
        class_code = (cat(os.path.join(directory, "class")) or "").lower()
        if not class_code.startswith(NETWORK_CLASS):
            continue
        pci_id, sub_id = pci_ids(directory)
        out.append(PciFunction(
            address=address, class_code=class_code, pci_id=pci_id, pci_subsystem_id=sub_id,
            driver=link_name(os.path.join(directory, "driver")),
            has_physfn=exists(os.path.join(directory, "physfn")),
            interfaces=interfaces_of(directory),
        ))
    return out


AREA = "pci_network"


def collect(run: Run) -> List[PciFunction]:
    return collect_pci_network(run.roots)
