"""Network-class PCI functions from /sys/bus/pci/devices, whether a driver took them or not.

/sys/class/net lists interfaces, and a device no driver bound never becomes one: an SR-IOV VF whose driver
is missing (Azure's MANA on a kernel without CONFIG_MICROSOFT_MANA) is only visible here.
"""

from __future__ import annotations

import os
from typing import List

from guestcheck.collect.fs import cat, exists, link_name, listdir
from guestcheck.collect.nics import pci_ids
from guestcheck.facts import PciFunction
from guestcheck.roots import Roots

NETWORK_CLASS = "0x02"  # PCI base class 02h: network controller (PCI Code and ID Assignment, section 1.3)
MAX_FUNCTIONS = 4096  # more PCI functions than any VM has: a hostile or broken tree is cut off here


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
            interfaces=listdir(os.path.join(directory, "net")),
        ))
    return out
