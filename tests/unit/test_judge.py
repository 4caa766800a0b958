"""judge/: every verdict that is not a finding, decided once, returned as a frozen record, the facts untouched."""

from __future__ import annotations

import dataclasses
import json
import pkgutil

import pytest

import guestcheck.checks
from guestcheck.checks import catalog, modules, settings_of
from guestcheck.doctor import build_report
from guestcheck.facts import Evidence, Facts, Nic, Virt
from guestcheck.judge import Judged, judge, with_verdicts
from guestcheck.render.json import dumps, facts_document
from tests.fakemachine import FakeMachine, from_snapshot, snapshot_names

E1000 = dict(driver="e1000", bus="pci", pci_id="8086:100e")


def _machine(tmp_path) -> Facts:
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)")
    m.add_nic("ens3", **E1000)
    m.add_nic("br0", bus=None, drvinfo_driver="bridge", marker="bridge", ifindex=3)
    return m.collect()


def test_judging_never_changes_the_facts(tmp_path):
    facts = _machine(tmp_path)
    before = json.dumps(facts.to_dict(), sort_keys=True)
    judged = judge(facts)
    report = build_report(facts)
    dumps(report.to_dict())
    assert json.dumps(facts.to_dict(), sort_keys=True) == before
    assert (facts.virt.hypervisor, facts.nic("ens3").kind) == (None, "unknown")  # what the collector recorded
    assert (judged.virt.hypervisor, judged.kind(facts.nic("ens3"))) == ("qemu", "emulated")
    assert judged.software_type(facts.nic("br0")) == "bridge"


def test_the_record_is_frozen(tmp_path):
    judged = judge(_machine(tmp_path))
    assert isinstance(judged, Judged)
    with pytest.raises(dataclasses.FrozenInstanceError):
        judged.memory = None  # type: ignore[misc]


def test_facts_json_merges_the_verdicts_back_where_facts1_shows_them(tmp_path):
    facts = _machine(tmp_path)
    doc = facts_document(facts, judge(facts))
    assert list(doc) == list(facts.to_dict())  # the same keys in the same order: facts/1 keeps its shape
    assert doc["virt"]["hypervisor"] == "qemu"
    ens3 = next(n for n in doc["nics"] if n["name"] == "ens3")
    assert (ens3["kind"], ens3["kind_reason"]) == ("emulated", judge(facts).nic(facts.nic("ens3")).reason)
    assert with_verdicts(facts, judge(facts)).nics[0] is not facts.nics[0]


def test_nics_with_the_same_name_keep_their_own_verdicts():
    """A damaged file may repeat a name: verdicts follow the NIC objects, index for index."""
    a = Nic(name="eth0", driver="virtio_net", bus="virtio", has_device=True, has_physfn=False, devtype="", markers=[])
    b = Nic(name="eth0", driver="veth", driver_ethtool="veth", has_device=False, has_physfn=False, devtype="",
            markers=[])
    judged = judge(Facts(nics=[a, b]))
    assert (judged.kind(a), judged.kind(b)) == ("paravirtual", "software")


def test_the_memory_verdict_is_judged_once_and_reported_as_judged(tmp_path):
    facts = _machine(tmp_path)
    report = build_report(facts)
    verdict = next(f for f in report.findings if f.id == "MEM-GUARANTEED")
    assert verdict.evidence["guaranteed"] == report.verdicts.memory.guaranteed
    assert verdict.evidence["reasons"] == report.verdicts.memory.reasons


def test_the_platform_is_judged_from_the_evidence_not_a_recorded_verdict():
    rows = [Evidence("dmi", "/sys/class/dmi/id/sys_vendor", "Google"),
            Evidence("dmi", "/sys/class/dmi/id/product_name", "Google Compute Engine")]
    judged = judge(Facts(virt=Virt(hypervisor="vmware", cloud="amazon", evidence=rows)))
    assert (judged.virt.hypervisor, judged.virt.cloud) == ("kvm", "google")


def test_owners_come_from_the_judge(tmp_path):
    from guestcheck.facts import OtherAgents

    judged = judge(Facts(agents=OtherAgents(irqbalance=True)))
    assert [o.agent for o in judged.owners("irq")] == ["irqbalance"]
    assert judge(Facts()).owners("irq") == []


def test_check_modules_are_found_not_listed():
    """Adding a check is one module with FINDINGS and run(facts, judged): no list to edit."""
    in_package = {i.name for i in pkgutil.iter_modules(guestcheck.checks.__path__)}
    found = {m.__name__.rsplit(".", 1)[1] for m in modules()}
    assert found == in_package - {"fixes"}  # fixes.py holds helpers, not a check
    # those there were when the registry went (a new one, as congestion, joins them without an edit here)
    assert found >= {"virt", "nic", "offload", "queues", "memory", "softirq", "path", "bridge", "conntrack",
                     "tunnels", "rings", "drops", "fastpath", "agents"}
    assert all(callable(m.run) and m.FINDINGS for m in modules())


def test_each_module_names_the_settings_its_findings_are_about():
    """FINDING_SETTINGS lives with each check; the runner's lookup gives what the old central table gave."""
    expected = {
        "NIC-EMULATED": ("link",), "NIC-NONE": ("link",), "NIC-DROPS": ("link",), "NIC-QUEUE-DROPS": ("link",),
        "NIC-ALLOWANCE-EXCEEDED": ("link",), "AZURE-VF-MISSING": ("link",), "OFFLOAD-TSO-OFF": ("offloads",),
        "OFFLOAD-ON": ("offloads",), "QUEUES-SINGLE-VIRTIO": ("channels",), "RING-RX-SMALL": ("rings",),
        "SOFTIRQ-DROPS": ("sysctl:net.core.netdev_max_backlog", "rps"), "SOFTIRQ-IMBALANCE": ("irq", "rps"),
        "IRQBALANCE-MISSING": ("irq",), "PATH-MTU-MISMATCH": ("mtu",), "TUNNEL-MTU": ("mtu",),
        "CONNTRACK-TABLE-FULL": ("sysctl:net.netfilter.nf_conntrack_max",),
        "VIRT-PLATFORM": (), "MEM-BALLOON": (), "CHECK-FAILED": (),
    }
    assert {i: settings_of(i) for i in expected} == expected
    assert set(expected) <= set(catalog())


@pytest.mark.parametrize("name", snapshot_names())
def test_every_snapshot_judges_the_same_through_a_saved_file(tmp_path, name):
    """facts --json, read back, judged again: the same verdicts (what doctor --facts FILE relies on)."""
    from guestcheck.facts import facts_from_dict

    facts = from_snapshot(name, tmp_path).collect()
    saved = facts_document(facts, judge(facts))
    again = facts_from_dict(json.loads(dumps(saved)))
    assert facts_document(again, judge(again)) == saved
