"""checks/nic.py: the NIC model is the VM's configuration, judged whatever the link state.

A doctor run while an e1000's link is still coming up (first boot) must still name the emulated NIC.
"""

from __future__ import annotations

import pytest

from guestcheck.checks import CARRYING_TRAFFIC, PRESENT, catalog
from guestcheck.facts import Channels, Feature
from guestcheck.report import judge
from tests.fakemachine import FakeMachine

E1000 = dict(driver="e1000", pci_id="8086:100e", pci_subsystem_id="1af4:1100")
# (operstate, IFF flags, carrier): down by the admin, up without carrier yet, "unknown" with no carrier yet
LINK_STATES = [("down", 0x1002, 0), ("lowerlayerdown", 0x1003, 0), ("dormant", 0x1003, 1), ("unknown", 0x1003, 0)]


def _findings(m: FakeMachine, subject: str) -> dict:
    return {f.id: f for f in judge(m.collect()).findings if f.subject == subject}


@pytest.mark.parametrize("operstate,flags,carrier", LINK_STATES, ids=[s[0] for s in LINK_STATES])
def test_an_emulated_nic_is_critical_whatever_its_link_state(tmp_path, operstate, flags, carrier):
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)")
    m.add_nic("ens2", operstate=operstate, flags=flags, carrier=carrier, **E1000)
    report = judge(m.collect())
    emulated = [f for f in report.findings if f.id == "NIC-EMULATED"]
    assert [f.subject for f in emulated] == ["ens2"]
    assert emulated[0].evidence["operstate"] == operstate
    assert emulated[0].summary.endswith(f"(link {operstate})")
    assert report.status.label == "critical"


def test_an_emulated_nic_with_its_link_up_says_nothing_about_the_link(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("ens2", **E1000)
    assert _findings(m, "ens2")["NIC-EMULATED"].summary == (
        "emulated Intel 82540EM (e1000) NIC: up to 5x slower than paravirtual virtio-net")


def test_the_hosts_single_queue_is_judged_on_a_nic_that_is_down(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_cpus(2)
    m.add_nic("ens3", driver="virtio_net", bus="virtio", operstate="down", flags=0x1002, carrier=0,
              channels=Channels(max_combined=1, combined=1),
              features={"tx-tcp-segmentation": Feature(False, False), "rx-gro": Feature(True, False)})
    ids = set(_findings(m, "ens3"))
    assert "QUEUES-SINGLE-VIRTIO" in ids and "NIC-PARAVIRTUAL" in ids
    # offloads the guest can change only cost while packets flow
    assert "OFFLOAD-TSO-OFF" not in ids


def test_guest_side_queue_advice_waits_for_traffic(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_cpus(4)
    m.add_nic("ens3", driver="virtio_net", bus="virtio", operstate="down", flags=0x1002, carrier=0,
              channels=Channels(max_combined=4, combined=1), queues=1)
    assert "QUEUES-FEWER-THAN-VCPUS" not in _findings(m, "ens3")


def test_no_interface_up_is_still_reported_next_to_the_emulated_nic(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("ens2", operstate="down", flags=0x1002, carrier=0, **E1000)
    ids = {f.id for f in judge(m.collect()).findings}
    assert {"NIC-EMULATED", "NIC-NONE"} <= ids


def test_every_nic_level_finding_says_what_it_is_judged_on():
    docs = catalog()
    present = {"NIC-EMULATED", "NIC-PARAVIRTUAL", "NIC-SRIOV-VF", "NIC-PHYSICAL", "NIC-UNKNOWN",
               "QUEUES-SINGLE-VIRTIO", "OFFLOAD-BACKEND-NONE"}
    traffic = {"NIC-NONE", "QUEUES-FEWER-THAN-VCPUS", "OFFLOAD-TSO-OFF", "OFFLOAD-GSO-OFF", "OFFLOAD-GRO-OFF",
               "OFFLOAD-RXCSUM-OFF", "OFFLOAD-TXCSUM-OFF", "OFFLOAD-SG-OFF", "OFFLOAD-UNKNOWN", "SOFTIRQ-NO-RPS",
               "SOFTIRQ-NO-XPS", "IRQ-AFFINITY-ONE-CPU"}
    assert {i for i in present if docs[i].judged_on != PRESENT} == set()
    assert {i for i in traffic if docs[i].judged_on != CARRYING_TRAFFIC} == set()
