"""Odd machines: vanishing interfaces, hundreds of them, strange names, missing files. No traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.doctor import build_report
from guestcheck.facts import Channels, Feature, facts_from_dict
from guestcheck.judge import judged_facts
from tests.fakemachine import REPO, FakeMachine


def test_interface_vanishing_between_listing_and_reading(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="virtio_net", bus="virtio")
    m.add_nic("gone0", driver="virtio_net", bus="virtio", ifindex=3)

    class Vanishing(type(m.ethtool)):
        def drvinfo(self, ifname):
            if ifname == "gone0":
                shutil.rmtree(tmp_path / "sys/class/net/gone0")
                raise EthtoolError("no-device")
            return super().drvinfo(ifname)

    m.ethtool = Vanishing(m.ethtool.drvinfos, m.ethtool.feature_sets, m.ethtool.channel_sets)
    facts = m.collect()
    assert [n.name for n in facts.nics] == ["eth0"]


def test_hundreds_of_interfaces(tmp_path):
    m = FakeMachine(tmp_path)
    for i in range(300):
        m.add_nic(f"veth{i}", bus=None, drvinfo_driver="veth", ifindex=i + 2,
                  features={"tx-generic-segmentation": Feature(i % 2 == 0, False)}, channels=Channels(max_rx=2, rx=1))
    report = build_report(m.collect())
    assert len(report.facts.nics) == 300
    assert sum(f.id == "OFFLOAD-GSO-OFF" for f in report.findings) == 150


def test_odd_interface_names(tmp_path):
    m = FakeMachine(tmp_path)
    for i, name in enumerate(["eth0.100", "br-3f:1", "wg\u00e9", "a b", "x" * 15, "-dash"]):
        m.add_nic(name, bus=None, drvinfo_driver="veth", ifindex=i + 2)
    facts = judged_facts(m.collect())
    assert sorted(n.name for n in facts.nics) == sorted(["eth0.100", "br-3f:1", "wg\u00e9", "a b", "x" * 15, "-dash"])
    assert all(n.kind == "software" for n in facts.nics)


def test_missing_sysfs_files_give_unknown_values(tmp_path):
    m = FakeMachine(tmp_path)
    (tmp_path / "sys/class/net/eth0").mkdir(parents=True)  # a directory and nothing else
    facts = m.collect()
    nic = facts.nic("eth0")
    assert nic.mtu is None and nic.speed_mbps is None and nic.operstate is None
    # no ROOT/ethtool/eth0.json beside the fake sysfs: the ioctl answers were not captured (never asked live)
    assert nic.unknown == {k: "not-captured" for k in ("drvinfo", "features", "channels", "rings", "driver_stats")}
    build_report(facts)


def test_no_sysfs_at_all_is_unknown_not_a_crash(tmp_path):
    m = FakeMachine(tmp_path)
    shutil.rmtree(tmp_path / "sys")
    report = build_report(m.collect())
    assert report.status.label == "unknown"
    assert report.facts.problems and "sysfs" in str(report.facts.problems[0])
    assert report.facts.host.vcpus >= 1


def test_facts_survive_json_round_trip(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="e1000", pci_id="8086:100e", pci_subsystem_id="1af4:1100",
              features={"rx-gro": Feature(False, False)}, channels=Channels(max_combined=1, combined=1))
    facts = m.collect()
    again = facts_from_dict(json.loads(json.dumps(facts.to_dict())))
    assert again == facts
    assert [f.to_dict() for f in build_report(again).findings] == [f.to_dict() for f in build_report(facts).findings]


def test_cli_on_a_fake_root_prints_json_and_no_traceback(tmp_path):
    m = FakeMachine(tmp_path)
    m.add_nic("ens3", driver="8139cp", pci_id="10ec:8139", pci_subsystem_id="1af4:1100")
    env = {**os.environ, "GUESTCHECK_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "guestcheck", "doctor", "--json", "--sample", "0"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    assert doc["schema"] == "guestcheck.doctor/1"
    assert out.returncode == 2 and doc["status"] == "critical"
    nic = next(n for n in doc["facts"]["nics"] if n["name"] == "ens3")
    assert (nic["driver"], nic["kind"], nic["bus"]) == ("8139cp", "emulated", "pci")
