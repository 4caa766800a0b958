"""The fast path is in use (guestcheck/checks/fastpath.py, collect/pci.py), judged on fake sysfs trees.

Names and ids, with their sources:
- netvsc's counters vf_rx_packets, vf_tx_packets, vf_rx_bytes, vf_tx_bytes (vf_stats[]) and tx_queue_N_packets,
  rx_queue_N_packets (netvsc_get_strings()): Linux drivers/net/hyperv/netvsc_drv.c. The VF is the synthetic
  interface's lower device, its `master` the synthetic one (netdev_master_upper_dev_link in netvsc_vf_join).
- MANA's PCI id 1414:00ba (MANA_VF_DEVICE_ID): Linux drivers/net/ethernet/microsoft/mana/gdma.h.
- ENA's allowance counters (ena_stats_eni_strings[]): amzn/amzn-drivers kernel/linux/ena/ena_ethtool.c; the
  versions that added them, 2.2.10 and 2.8.1 (conntrack_allowance_available): its RELEASENOTES.md.
- Azure's DMI chassis asset tag and GCE's DMI product name: guestcheck/collect/virt.py DMI_ROWS (systemd's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from guestcheck.checks.fastpath import cloud_of, ena_version
from guestcheck.collect.ethtool import DrvInfo
from guestcheck.doctor import build_report
from guestcheck.facts import Evidence, Facts, Virt
from guestcheck.judge import judge
from tests.fakemachine import FakeMachine

AZURE_TAG = "7783-7084-3265-9085-8269-3286-77"


def pci_function(m: FakeMachine, address: str, pci_id: str, *, cls: str = "0x020000",
                 driver: Optional[str] = None, physfn: bool = False, iface: Optional[str] = None) -> None:
    """/sys/bus/pci/devices/ADDRESS -> ../../../devices/pci0000:00/ADDRESS, as the kernel lays it out."""
    dev = f"sys/devices/pci0000:00/{address}"
    vendor, device = pci_id.split(":")
    m.write(f"{dev}/class", cls + "\n")
    m.write(f"{dev}/vendor", f"0x{vendor}\n")
    m.write(f"{dev}/device", f"0x{device}\n")
    if driver:
        m.write(f"sys/bus/pci/drivers/{driver}/.keep", "")
        m.symlink(f"{dev}/driver", str(m.base / f"sys/bus/pci/drivers/{driver}"))
    if physfn:
        m.symlink(f"{dev}/physfn", str(m.base / "sys/devices/pci0000:00/0000:00:02.0"))
    if iface:
        m.write(f"{dev}/net/{iface}/.keep", "")
    m.symlink(f"sys/bus/pci/devices/{address}", str(m.base / dev))


def by_id(facts: Facts) -> dict:
    out: dict = {}
    for f in build_report(facts).findings:
        out.setdefault(f.id, []).append(f)
    return out


def netvsc_stats(vf_packets: int, channel_packets: int) -> dict:
    """`ethtool -S` of hv_netvsc in netvsc_drv.c's order: global, vf_stats[], then per channel."""
    return {"tx_scattered": 0, "tx_no_memory": 0, "tx_no_space": 0, "tx_too_big": 0, "tx_busy": 0,
            "tx_send_full": 0, "rx_comp_busy": 0, "rx_no_memory": 0, "stop_queue": 0, "wake_queue": 0,
            "vf_rx_packets": vf_packets, "vf_rx_bytes": vf_packets * 1000, "vf_tx_packets": vf_packets,
            "vf_tx_bytes": vf_packets * 900, "vf_tx_dropped": 0,
            "tx_queue_0_packets": channel_packets, "tx_queue_0_bytes": channel_packets * 100,
            "rx_queue_0_packets": channel_packets, "rx_queue_0_bytes": channel_packets * 100,
            "rx_queue_0_xdp_drop": 0}


def azure(tmp_path: Path, *, vf: Optional[str] = "mlx5_core", paired: bool = True,
          stats: Optional[dict] = None, vf_operstate: str = "up") -> FakeMachine:
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="Microsoft Corporation", product_name="Virtual Machine", chassis_asset_tag=AZURE_TAG)
    m.set_cpus(2)
    m.add_nic("eth0", driver="hv_netvsc", bus="vmbus", mac="00:0d:3a:11:22:33", ifindex=2, stats=stats)
    if vf:
        m.add_nic("enP1s1", driver=vf, bus="pci", pci_id="15b3:1016" if vf != "mana" else "1414:00ba",
                  mac="00:0d:3a:11:22:33", ifindex=3, operstate=vf_operstate)
        if paired:  # netvsc_vf_join: the VF's master is eth0, eth0 has lower_enP1s1
            m.symlink("sys/class/net/enP1s1/master", "../eth0")
            m.symlink("sys/class/net/eth0/lower_enP1s1", "../enP1s1")
    return m


def test_azure_vf_paired_and_busy_is_ok(tmp_path):
    found = by_id(azure(tmp_path, stats=netvsc_stats(vf_packets=500000, channel_packets=2000)).collect())
    (ok,) = found["AZURE-VF-PAIRED"]
    assert ok.subject == "eth0" and ok.evidence["vf"] == "enP1s1" and ok.evidence["pairing"] == "paired"
    assert ok.evidence["vf_packets"] == 1000000
    assert "AZURE-VF-IDLE" not in found and "AZURE-VF-MISSING" not in found


def test_azure_vf_paired_but_idle_is_critical(tmp_path):
    found = by_id(azure(tmp_path, stats=netvsc_stats(vf_packets=0, channel_packets=80000),
                        vf_operstate="down").collect())
    (idle,) = found["AZURE-VF-IDLE"]
    assert idle.severity.label == "critical"
    assert idle.evidence["synthetic_packets"] == 160000 and idle.evidence["vf_packets"] == 0
    assert "VF link down" in idle.summary
    assert idle.fix.splitlines()[0] == "ip link set enP1s1 up" and idle.fix_on == "guest"


def test_azure_mana_vf_paired(tmp_path):
    found = by_id(azure(tmp_path, vf="mana", stats=netvsc_stats(vf_packets=10, channel_packets=10)).collect())
    assert found["AZURE-VF-PAIRED"][0].evidence["vf_driver"] == "mana"


def test_azure_without_vf_warns_with_the_host_fix(tmp_path):
    found = by_id(azure(tmp_path, vf=None).collect())
    (missing,) = found["AZURE-VF-MISSING"]
    assert missing.severity.label == "warning" and missing.fix_on == "host"
    assert "--accelerated-networking true" in missing.fix
    assert missing.evidence["cloud"] == "microsoft"


def test_azure_vf_with_the_mac_but_not_paired_warns(tmp_path):
    found = by_id(azure(tmp_path, paired=False).collect())
    (missing,) = found["AZURE-VF-MISSING"]
    assert missing.evidence["pairing"] == "unpaired" and "not paired" in missing.summary


def test_hyperv_outside_azure_without_vf_is_not_judged(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="Microsoft Corporation", product_name="Virtual Machine")
    m.add_nic("eth0", driver="hv_netvsc", bus="vmbus")
    assert not {"AZURE-VF-MISSING", "AZURE-VF-IDLE", "AZURE-VF-PAIRED"} & set(by_id(m.collect()))


def test_mana_without_driver_is_critical_and_names_the_module(tmp_path):
    m = azure(tmp_path, vf=None)
    pci_function(m, "7870:00:00.0", "1414:00ba")
    facts = m.collect()
    (fn,) = facts.pci_network
    assert fn.driver is None and fn.pci_id == "1414:00ba" and fn.class_code == "0x020000"
    (mana,) = by_id(facts)["MANA-NO-DRIVER"]
    assert mana.severity.label == "critical" and mana.subject == "7870:00:00.0"
    assert "CONFIG_MICROSOFT_MANA" in mana.summary and mana.evidence["module"] == "mana"
    assert mana.fix.splitlines() == ["modprobe mana", "echo mana > /etc/modules-load.d/mana.conf",
                                     "echo 7870:00:00.0 > /sys/bus/pci/drivers_probe"]


def test_unbound_network_pci_function_is_critical(tmp_path):
    m = FakeMachine(tmp_path)
    pci_function(m, "0000:00:04.0", "8086:100e")  # QEMU's e1000, unbound
    pci_function(m, "0000:00:03.0", "1af4:1000", driver="virtio-pci", iface="eth0")  # bound: not judged
    pci_function(m, "0000:00:05.0", "8086:2922", cls="0x010601")  # a SATA controller: not a NIC
    pci_function(m, "0000:00:06.0", "8086:1889", physfn=True)  # a local PF's VF, free for passthrough
    facts = m.collect()
    assert [f.address for f in facts.pci_network] == ["0000:00:03.0", "0000:00:04.0", "0000:00:06.0"]
    (unbound,) = by_id(facts)["PCI-NIC-NO-DRIVER"]
    assert unbound.subject == "0000:00:04.0" and unbound.severity.label == "critical"
    assert unbound.evidence["module"] == "e1000"
    assert unbound.fix.splitlines() == ["modprobe e1000", "echo 0000:00:04.0 > /sys/bus/pci/drivers_probe"]


def test_unknown_pci_id_points_at_lspci(tmp_path):
    m = FakeMachine(tmp_path)
    pci_function(m, "0000:00:07.0", "abcd:0001")
    (unbound,) = by_id(m.collect())["PCI-NIC-NO-DRIVER"]
    assert unbound.fix.splitlines()[0] == "lspci -nnk -s 0000:00:07.0"


def test_ena_versions():
    assert ena_version("2.8.1g", "6.1.0-18-cloud-amd64") == (2, 8, 1)
    assert ena_version("2.2.9", "") == (2, 2, 9)
    assert ena_version("6.1.0-18-cloud-amd64", "6.1.0-18-cloud-amd64") is None  # in-tree: the kernel's release
    assert ena_version("5.10.0", "") is None
    assert ena_version(None, "") is None


ALLOWANCE = {"bw_in_allowance_exceeded": 0, "bw_out_allowance_exceeded": 0, "pps_allowance_exceeded": 0,
             "conntrack_allowance_exceeded": 0, "linklocal_allowance_exceeded": 0}


def ena_machine(tmp_path: Path, version: str, stats: Optional[dict]) -> FakeMachine:
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="Amazon EC2", product_name="m6i.large")
    m.write("etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    m.write("proc/sys/kernel/osrelease", "6.1.0-18-cloud-amd64\n")
    m.add_nic("ens5", driver="ena", bus="pci", pci_id="1d0f:ec20", stats=stats)
    m.ethtool.drvinfos["ens5"] = DrvInfo("ena", version, "", "0000:00:05.0")
    return m


@pytest.mark.parametrize("version,stats,needs", [
    ("2.2.9g", {"queue_0_tx_cnt": 1}, "2.2.10"),  # before the allowance counters
    ("2.6.0g", ALLOWANCE, "2.8.1"),  # allowance counters, no conntrack gauge yet
    ("6.1.0-18-cloud-amd64", {"queue_0_tx_cnt": 1}, "2.2.10"),  # in-tree driver without them: judged by names
])
def test_old_ena_driver_is_info_with_the_upgrade_path(tmp_path, version, stats, needs):
    (old,) = by_id(ena_machine(tmp_path, version, stats).collect())["ENA-DRIVER-OLD"]
    assert old.severity.label == "info" and old.evidence["needs"] == needs
    assert old.fix.splitlines() == ["apt-get update", "apt-get install -y --only-upgrade linux-image-cloud-amd64",
                                    "reboot"]


@pytest.mark.parametrize("version,stats", [
    ("2.12.3g", dict(ALLOWANCE, conntrack_allowance_available=100000)),
    ("6.1.0-18-cloud-amd64", dict(ALLOWANCE, conntrack_allowance_available=100000)),
])
def test_current_ena_driver_is_not_flagged(tmp_path, version, stats):
    assert "ENA-DRIVER-OLD" not in by_id(ena_machine(tmp_path, version, stats).collect())


def test_gce_virtio_suggests_gvnic_on_the_host(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="Google", product_name="Google Compute Engine")
    m.add_nic("ens4", driver="virtio_net", bus="virtio", virtio_parent_pci="1af4:1000")
    (gce,) = by_id(m.collect())["GCE-NOT-GVNIC"]
    assert gce.severity.label == "info" and gce.fix_on == "host"
    assert "--network-interface=nic-type=GVNIC" in gce.fix and "--guest-os-features=GVNIC" in gce.fix


def test_gve_on_gce_is_not_flagged(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="Google", product_name="Google Compute Engine")
    m.add_nic("ens4", driver="gve", bus="pci", pci_id="1ae0:0042")
    assert "GCE-NOT-GVNIC" not in by_id(m.collect())


def test_cloud_from_the_judged_verdict():
    assert cloud_of(Facts(virt=Virt(cloud="google"))) == "google"
    rows = [Evidence("dmi", "/sys/class/dmi/id/product_name", "Google Compute Engine")]
    assert cloud_of(judge(Facts(virt=Virt(evidence=rows)))) == "google"  # raw rows, judged first
    rows = [Evidence("dmi", "/sys/class/dmi/id/chassis_asset_tag", AZURE_TAG)]
    assert cloud_of(judge(Facts(virt=Virt(evidence=rows)))) == "microsoft"
    assert cloud_of(Facts()) is None
