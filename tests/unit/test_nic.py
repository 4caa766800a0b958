"""checks/nic.py: the NIC model is the VM's configuration, judged whatever the link state.

A doctor run while an e1000's link is still coming up (first boot) must still name the emulated NIC.
"""

from __future__ import annotations

import pytest

from guestcheck.checks import CARRYING_TRAFFIC, PRESENT, catalog
from guestcheck.doctor import build_report
from guestcheck.facts import Channels, Feature
from tests.fakemachine import FakeMachine

E1000 = dict(driver="e1000", pci_id="8086:100e", pci_subsystem_id="1af4:1100")
# (operstate, IFF flags, carrier): down by the admin, up without carrier yet, "unknown" with no carrier yet
LINK_STATES = [("down", 0x1002, 0), ("lowerlayerdown", 0x1003, 0), ("dormant", 0x1003, 1), ("unknown", 0x1003, 0)]


def _findings(m: FakeMachine, subject: str) -> dict:
    return {f.id: f for f in build_report(m.collect()).findings if f.subject == subject}


@pytest.mark.parametrize("operstate,flags,carrier", LINK_STATES, ids=[s[0] for s in LINK_STATES])
def test_an_emulated_nic_is_critical_whatever_its_link_state(tmp_path, operstate, flags, carrier):
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)")
    m.add_nic("ens2", operstate=operstate, flags=flags, carrier=carrier, **E1000)
    report = build_report(m.collect())
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
    ids = {f.id for f in build_report(m.collect()).findings}
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


# --- the NIC kind is decided at judging time, from the raw answers in the facts ---

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from guestcheck.facts import Facts, Nic, Virt, facts_from_dict  # noqa: E402
from guestcheck.judge import judge, judged_facts  # noqa: E402

OLD_FACTS = Path(__file__).resolve().parent.parent / "data/facts-0.1.0-1096a5b.json"  # saved by main at 1096a5b
REPO = Path(__file__).resolve().parent.parent.parent


def test_the_collector_records_raw_answers_and_no_verdict(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("ens2", **E1000)
    m.add_nic("br0", bus=None, drvinfo_driver="bridge", marker="bridge", ifindex=3)
    m.symlink("sys/class/net/br0/lower_ens2", "../ens2")
    m.symlink("sys/class/net/ens2/master", "../br0")
    facts = m.collect()
    ens2, br0 = facts.nic("ens2"), facts.nic("br0")
    assert (ens2.kind, ens2.kind_reason, br0.software_type) == ("unknown", "", None)  # not judged yet
    assert (ens2.has_device, ens2.has_physfn, ens2.master) == (True, False, "br0")
    assert (br0.has_device, br0.markers, br0.lowers) == (False, ["bridge"], ["ens2"])
    judged = judge(facts)
    assert (judged.kind(ens2), judged.kind(br0), judged.software_type(br0)) == ("emulated", "software", "bridge")
    assert (ens2.kind, br0.software_type) == ("unknown", None)  # judging never changes the facts


def test_kinds_follow_the_raw_answers_not_what_a_file_says():
    nic = Nic(name="eth0", kind="physical", kind_reason="stale", driver="virtio_net", bus="virtio",
              has_device=True, has_physfn=False, devtype="", markers=[])
    facts = judged_facts(Facts(virt=Virt(hypervisor="kvm"), nics=[nic]))
    assert (facts.nics[0].kind, facts.nics[0].kind_reason) == ("paravirtual", "driver virtio_net: virtio-net")


def test_older_facts_without_raw_markers_keep_their_observations():
    vf = Nic(name="eth1", kind="sriov-vf", kind_reason="sysfs device/physfn: a virtual function of a local "
             "physical NIC", driver="bnxt_en", bus="pci", pci_id="14e4:16d7")
    veth = Nic(name="veth0", kind="software", software_type="veth", driver="veth", driver_ethtool="veth")
    judged = judge(Facts(nics=[vf, veth]))
    assert judged.kind(vf) == "sriov-vf"
    assert (judged.kind(veth), judged.software_type(veth)) == ("software", "veth")


def test_a_facts_file_from_the_previous_release_is_judged_by_todays_tables():
    data = json.loads(OLD_FACTS.read_text())
    assert data["guestcheck_version"] == "0.1.0" and "has_device" not in data["nics"][0]
    for nic in data["nics"]:  # as if the old tables had said something else
        nic["kind"], nic["kind_reason"] = "physical", "an old verdict"
    report = build_report(facts_from_dict(data))
    kinds = {n.name: (report.verdicts.kind(n), report.verdicts.software_type(n)) for n in report.facts.nics}
    assert kinds == {"gco0": ("software", "veth"), "gcobr0": ("software", "bridge"),
                     "gcomv0": ("software", "macvlan"), "lo": ("software", "loopback")}
    assert "CHECK-FAILED" not in {f.id for f in report.findings}
    # sg was off on gco0 when it was saved: still judged, with the working order (old files lack "requested")
    sg = {f.id: f for f in report.findings if f.subject == "gco0"}
    assert sg["OFFLOAD-GSO-OFF"].fix.splitlines() == ["ethtool -K gco0 sg on", "ethtool -K gco0 gso on"]


def test_doctor_facts_recomputes_kinds_on_the_command_line(tmp_path):
    data = json.loads(OLD_FACTS.read_text())
    data["nics"][0]["kind"] = "emulated"
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps(data))
    out = subprocess.run([sys.executable, "-m", "guestcheck", "doctor", "--json", "--facts", str(saved)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    doc = json.loads(out.stdout)
    nics = {n["name"]: n for n in doc["facts"]["nics"]}
    assert nics["gco0"]["kind"] == "software" and nics["gco0"]["kind_reason"].startswith("no backing device")
    assert all(f["fix_on"] in ("guest", "host", "") for f in doc["findings"])
    assert "NIC-EMULATED" not in {f["id"] for f in doc["findings"]}


def test_the_emulated_nic_fix_names_only_the_platforms_tools(tmp_path):
    """No fix names settings the detected platform cannot have (a VMware guest edits no libvirt XML)."""
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="VMware, Inc.", product_name="VMware Virtual Platform")
    m.add_nic("ens33", driver="e1000", pci_id="8086:100f", pci_subsystem_id="15ad:0750")
    fix = _findings(m, "ens33")["NIC-EMULATED"].fix
    assert [line.split(":", 1)[0] for line in fix.splitlines()] == ["on the host", "VMware"]
    assert "vmxnet3" in fix and "libvirt" not in fix


def test_the_emulated_nic_fix_on_qemu_names_the_kvm_tools(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)")
    m.add_nic("ens2", **E1000)
    labels = [line.split(":", 1)[0] for line in _findings(m, "ens2")["NIC-EMULATED"].fix.splitlines()]
    assert labels == ["on the host", "libvirt", "QEMU", "Proxmox"]
