"""Other agents that own settings (collect/other_agents.py, judge/owners.py, checks/agents.py), on fake trees.

Sources of the file layouts: TuneD's profiles (PROFILE/tuned.conf under /etc/tuned and /usr/lib/tuned, [main]
include=, [sysctl]; redhat-performance/tuned profiles/), NetworkManager's run state
(/run/NetworkManager/devices/IFINDEX, [device] managed=: NetworkManager src/nm-config.c), cloud-init's
netplan and ifupdown files (50-cloud-init.yaml, interfaces.d/50-cloud-init), google_set_multiqueue
(GoogleCloudPlatform/guest-configs src/usr/bin/google_set_multiqueue).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guestcheck.checks import annotate
from guestcheck.collect.other_agents import collect_agents, parse_eni_mtu, parse_netplan_mtu
from guestcheck.doctor import build_report
from guestcheck.facts import Facts, Nic, NicSteering, OtherAgents, Softirq, SoftnetCpu
from guestcheck.findings import Finding, Severity
from guestcheck.judge.owners import other_owners
from tests.fakemachine import FakeMachine
from tests.judged import with_recorded

REPO = Path(__file__).resolve().parents[2]


def tuned_profile(m: FakeMachine, where: str, name: str, text: str) -> None:
    m.write(f"{where}/tuned/{name}/tuned.conf", text)


def test_tuned_profile_with_includes(tmp_path):
    m = FakeMachine(tmp_path)
    m.write("etc/tuned/active_profile", "my-net\n")
    tuned_profile(m, "usr/lib", "network-throughput", "[main]\ninclude=throughput-performance\n\n[sysctl]\n"
                  "net.ipv4.tcp_rmem=4096 131072 16777216\nnet.core.netdev_max_backlog = 4096\n")
    tuned_profile(m, "usr/lib", "throughput-performance", "[main]\nsummary=x\n[cpu]\ngovernor=performance\n"
                  "[sysctl]\nnet.core.netdev_max_backlog=2048\nkernel.sched_min_granularity_ns = 10000000\n")
    tuned_profile(m, "etc", "my-net", "[main]\ninclude=network-throughput, my-net\n[net]\nchannels=combined 4\n"
                  "[sysctl]\nnet/core/somaxconn=4096\n# net.core.rmem_max=1\n")
    a = collect_agents(m.roots)
    assert a.tuned_profiles == ["my-net"]
    assert a.tuned_sysctl == {"kernel.sched_min_granularity_ns": "10000000", "net.core.netdev_max_backlog": "4096",
                              "net.ipv4.tcp_rmem": "4096 131072 16777216", "net.core.somaxconn": "4096"}
    assert a.tuned_sysctl_files["net.core.netdev_max_backlog"].endswith("usr/lib/tuned/network-throughput/tuned.conf")
    assert a.tuned_sysctl_files["net.core.somaxconn"].endswith("etc/tuned/my-net/tuned.conf")
    assert set(a.tuned_sections) == {"net", "cpu"}


def test_tuned_etc_wins_and_missing_or_computed_includes_are_noted(tmp_path):
    m = FakeMachine(tmp_path)
    m.write("etc/tuned/active_profile", "virtual-guest ../../etc/passwd\n")
    tuned_profile(m, "usr/lib", "virtual-guest", "[sysctl]\nvm.swappiness=30\n")
    tuned_profile(m, "etc", "virtual-guest",
                  "[main]\ninclude=${f:virt_check:a:b}, nowhere\n[sysctl]\nvm.dirty_ratio=30\n")
    a = collect_agents(m.roots)
    assert a.tuned_profiles == ["virtual-guest"]
    assert a.tuned_sysctl == {"vm.dirty_ratio": "30"}
    notes = " ".join(a.notes)
    assert "not profile names" in notes and "computed by TuneD" in notes and "nowhere: no tuned.conf" in notes


def test_processes_google_and_networkmanager(tmp_path):
    m = FakeMachine(tmp_path)
    for pid, comm in ((1, "systemd"), (400, "irqbalance"), (410, "google_guest_ag"), (420, "NetworkManager")):
        m.write(f"proc/{pid}/comm", comm + "\n")
    m.write("usr/bin/google_set_multiqueue", "#!/bin/bash\n")
    m.add_nic("eth0", driver="virtio_net", bus="virtio", ifindex=2)
    m.add_nic("eth1", driver="mlx5_core", bus="pci", ifindex=3)
    m.write("run/NetworkManager/devices/2", "[device]\nmanaged=true\nconnection-uuid=1234\n")
    m.write("run/NetworkManager/devices/3", "[device]\nmanaged=false\n")
    m.write("run/NetworkManager/devices/9", "[device]\nmanaged=true\n")  # gone since
    a = collect_agents(m.roots)
    assert a.irqbalance is True and a.tuned_running is False and a.networkmanager_running is True
    assert a.google_agents == ["google_guest_agent"]  # its 15-byte comm
    assert a.google_multiqueue == "/usr/bin/google_set_multiqueue"
    assert a.networkmanager_managed == {"eth0": True, "eth1": False}


def test_cloud_init_mtu_from_netplan_and_ifupdown(tmp_path):
    netplan = """# written by cloud-init
network:
    ethernets:
        eth0:
            dhcp4: true
            match:
                macaddress: 00:0d:3a:11:22:33
            mtu: 9001
            set-name: eth0
        ens5:
            mtu: 1500
    version: 2
"""
    assert parse_netplan_mtu(netplan) == {"eth0": 9001, "ens5": 1500}
    assert parse_eni_mtu("auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n    mtu 1460\n") == {
        "eth0": 1460}
    m = FakeMachine(tmp_path)
    m.write("etc/netplan/50-cloud-init.yaml", netplan)
    a = collect_agents(m.roots)
    assert a.cloud_init_mtu == {"eth0": 9001, "ens5": 1500} and a.cloud_init_file == "/etc/netplan/50-cloud-init.yaml"



NON_ASCII_DIGITS = ["\u00b2", "\u0663", "\uff11", "15\u00b2", "1_500"]  # ², ٣, fullwidth 1: isdigit() says yes


def test_a_cloud_init_mtu_that_is_not_ascii_digits_is_no_mtu(tmp_path):
    for value in NON_ASCII_DIGITS:
        netplan = f"network:\n  ethernets:\n    eth0:\n      mtu: {value}\n    ens5:\n      mtu: 1500\n"
        assert parse_netplan_mtu(netplan) == {"ens5": 1500}
        assert parse_eni_mtu(f"iface eth0 inet dhcp\n    mtu {value}\n") == {}


def test_doctor_facts_and_refresh_with_mtu_superscript_two_in_netplan(tmp_path):
    """`mtu: ²` in cloud-init's netplan file made doctor, refresh and facts an internal error."""
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="virtio_net", bus="virtio")
    m.write("etc/netplan/50-cloud-init.yaml", "network:\n  ethernets:\n    eth0:\n      mtu: \u00b2\n")
    m.write("etc/network/interfaces.d/50-cloud-init", "iface eth0 inet dhcp\n    mtu \u00b2\n")
    env = {**os.environ, "GUESTCHECK_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    for args in (["doctor", "--sample", "0"], ["facts", "--json", "--sample", "0"], ["refresh"]):
        out = subprocess.run([sys.executable, "-m", "guestcheck", *args], capture_output=True, text=True, env=env,
                             timeout=120)
        assert "internal error" not in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
        assert out.returncode in ((0, 1, 2) if args[0] != "refresh" else (0, 1)), (args, out.returncode, out.stderr)
    assert collect_agents(m.roots).cloud_init_mtu == {}


def test_owners_by_setting():
    agents = OtherAgents(irqbalance=True, tuned_profiles=["network-latency"],
                         tuned_sysctl={"net.core.busy_read": "50"}, tuned_sysctl_files={"net.core.busy_read": "/f"},
                         google_multiqueue="/usr/bin/google_set_multiqueue", networkmanager_managed={"eth1": True},
                         cloud_init_mtu={"eth0": 9001}, cloud_init_file="/etc/netplan/50-cloud-init.yaml")
    assert [(o.agent, o.puts_back) for o in other_owners(agents, "irq")] == [
        ("irqbalance", True), ("google_set_multiqueue", False)]
    assert [(o.agent, o.puts_back) for o in other_owners(agents, "rps")] == [("irqbalance", True)]
    (tuned,) = other_owners(agents, "sysctl:net.core.busy_read")
    assert tuned.puts_back and tuned.value == "50" and "network-latency" in tuned.detail
    assert other_owners(agents, "sysctl:net.core.somaxconn") == []
    assert [o.agent for o in other_owners(agents, "mtu", "eth0")] == ["cloud-init"]
    assert [o.agent for o in other_owners(agents, "link", "eth1")] == ["NetworkManager"]
    assert other_owners(None, "irq") == []


def test_doctor_names_the_other_owner_in_the_evidence():
    nic = Nic("eth0", kind="paravirtual", driver="virtio_net", operstate="up", rx_queues=1, tx_queues=1)
    facts = Facts(nics=[nic], agents=OtherAgents(irqbalance=True, tuned_profiles=["throughput-performance"],
                                                 tuned_sysctl={"net.core.netdev_max_backlog": "4096"}),
                  softirq=Softirq(cpus=[SoftnetCpu(0, dropped=50, dropped_per_s=5.0), SoftnetCpu(1)],
                                  nics=[NicSteering("eth0", 1, 1, rps_cpus={"rx-0": "0"})], netdev_max_backlog=1000))
    facts.host.vcpus = 2
    found = {f.id: f for f in build_report(facts).findings}
    drops = found["SOFTIRQ-DROPS"].evidence["other_owners"]
    assert any(line.startswith("TuneD: active profile throughput-performance sets net.core.netdev_max_backlog")
               for line in drops)
    assert any(line.startswith("irqbalance:") for line in drops)  # the RPS half of the fix
    assert found["SOFTIRQ-NO-RPS"].evidence["other_owners"][0].startswith("irqbalance:")
    assert "other_owners" not in found["NIC-PARAVIRTUAL"].evidence
    summary = found["AGENTS-OTHER-OWNERS"]
    assert summary.severity is Severity.INFO and "TuneD profile throughput-performance" in summary.summary


def test_annotate_leaves_findings_without_owners_alone():
    f = Finding("SOFTIRQ-NO-XPS", Severity.INFO, "eth0", "x", {"a": 1}, "")
    assert annotate(*with_recorded(Facts(agents=OtherAgents())), f) is f
    assert annotate(*with_recorded(Facts()), f) is f
