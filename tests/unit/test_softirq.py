"""SoftIRQ health on fake trees: softnet_stat, softirqs and interrupts readings, steering, and the checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pytest

from guestcheck.checks import softirq as check
from guestcheck.collect.counters import CounterReading, CounterSample
from guestcheck.collect.softirq import collect_softirq, nic_steering, parse_interrupts, parse_softnet
from guestcheck.cpus import cpu_bitmap, first_cpus_mask
from guestcheck.facts import Facts, Host, Nic, NicIrq, NicSteering, Softirq, SoftnetCpu, facts_from_dict
from guestcheck.roots import Roots
from tests.fakemachine import FakeMachine, load_snapshot
from tests.judged import with_recorded


def softnet_row(processed: int, dropped: int, squeezed: int, cpu: Optional[int] = None) -> str:
    """A row as the kernel prints it: 13 columns with the CPU id (5.10+), 15 on 6.x, 11 before."""
    row = f"{processed:08x} {dropped:08x} {squeezed:08x} " + " ".join(["00000000"] * 6)
    row += " 00000000 00000000"  # received_rps, flow_limit_count
    if cpu is not None:
        row += f" 00000000 {cpu:08x} 00000000 00000000"  # backlog_len, cpu id, input_qlen, process_qlen
    return row + "\n"


def proc_stat(cpus: list[int]) -> str:
    return "cpu  1 0 1 100 0 0 0 0 0 0\n" + "".join(f"cpu{c} 1 0 1 100 0 0 0 0 0 0\n" for c in cpus)


def softirqs(net_rx: dict[int, int], possible: int) -> str:
    head = "    " + "".join(f"       CPU{i}" for i in range(possible)) + "\n"
    return head + "      NET_RX:" + "".join(f" {net_rx.get(i, 0):10d}" for i in range(possible)) + "\n"


def reading(t: float, softnet: str, stat: Optional[str] = None, sirq: Optional[str] = None,
            interrupts: Optional[str] = None) -> CounterReading:
    return CounterReading(monotonic=t, proc_stat=stat, softnet_stat=softnet, softirqs=sirq, interrupts=interrupts)


def test_new_format_maps_rows_by_the_cpu_column_from_a_real_capture() -> None:
    text = load_snapshot("cloud-microvm-virtio")["softnet_stat"]  # 15 columns, kernel 6.x
    rows, mapping = parse_softnet(text, online=None)
    assert mapping == "cpu-column"
    assert rows == {0: (0x11, 0, 0, 0), 1: (0x135A, 0, 0, 0)}


def test_rates_per_second_and_32bit_wrap_around() -> None:
    before = reading(10.0, softnet_row(0xFFFFFF00, 0xFFFFFFF0, 5, cpu=0) + softnet_row(100, 0, 0, cpu=1))
    after = reading(12.0, softnet_row(0x00000100, 0x00000010, 9, cpu=0) + softnet_row(300, 0, 0, cpu=1))
    s = collect_softirq(Roots.under("/nonexistent"), [], CounterSample(before, after))
    cpu0, cpu1 = s.cpus
    assert cpu0.dropped == 0x20 and cpu0.dropped_per_s == 16.0  # wrapped: 0xfffffff0 -> 0x10 is 32 drops
    assert cpu0.processed_per_s == 0x200 / 2
    assert cpu0.squeezed == 4 and cpu0.squeezed_per_s == 2.0
    assert cpu0.dropped_since_boot == 0x10
    assert cpu1.processed_per_s == 100.0 and cpu1.dropped == 0


def test_cpu_going_offline_between_readings_new_format() -> None:
    before = reading(0.0, softnet_row(10, 1, 0, cpu=0) + softnet_row(10, 0, 0, cpu=1) + softnet_row(10, 0, 0, cpu=2))
    after = reading(1.0, softnet_row(20, 1, 0, cpu=0) + softnet_row(50, 3, 0, cpu=2))
    s = collect_softirq(Roots.under("/nonexistent"), [], CounterSample(before, after))
    assert [c.cpu for c in s.cpus] == [0, 2]
    assert s.cpus_went_offline == [1] and s.cpus_came_online == []
    assert s.cpus[1].processed_per_s == 40.0 and s.cpus[1].dropped == 3  # cpu2 keeps its own row


def test_cpu_going_offline_between_readings_old_format_uses_the_online_set_of_each_reading() -> None:
    # Before 5.10 rows are the online CPUs in order: when cpu1 goes away, cpu2's row moves up one line.
    before = reading(0.0, softnet_row(10, 0, 0) + softnet_row(1000, 0, 0) + softnet_row(50, 7, 0),
                     stat=proc_stat([0, 1, 2]))
    after = reading(1.0, softnet_row(11, 0, 0) + softnet_row(60, 9, 0), stat=proc_stat([0, 2]))
    s = collect_softirq(Roots.under("/nonexistent"), [], CounterSample(before, after))
    assert s.row_mapping == "online-order"
    assert [c.cpu for c in s.cpus] == [0, 2]
    assert s.cpus[1].processed_per_s == 10.0 and s.cpus[1].dropped == 2  # not cpu1's 1000 -> 60 "wrap"
    assert s.cpus_went_offline == [1]
    assert s.notes == []


def test_old_format_without_proc_stat_is_noted() -> None:
    before = reading(0.0, softnet_row(1, 0, 0))
    after = reading(1.0, softnet_row(2, 0, 0))
    s = collect_softirq(Roots.under("/nonexistent"), [], CounterSample(before, after))
    assert [c.cpu for c in s.cpus] == [0]
    assert any("could not be matched" in n for n in s.notes)


def test_net_rx_per_cpu_from_proc_softirqs_with_wrap() -> None:
    before = reading(0.0, softnet_row(0, 0, 0, cpu=0) + softnet_row(0, 0, 0, cpu=1),
                     sirq=softirqs({0: 4294967000, 1: 100}, 2))
    after = reading(2.0, softnet_row(0, 0, 0, cpu=0) + softnet_row(0, 0, 0, cpu=1),
                    sirq=softirqs({0: 1704, 1: 300}, 2))
    s = collect_softirq(Roots.under("/nonexistent"), [], CounterSample(before, after))
    assert s.cpus[0].net_rx_per_s == (1704 + 2**32 - 4294967000) / 2
    assert s.cpus[1].net_rx_per_s == 100.0


def interrupts_of(snapshot: str) -> str:
    snap = load_snapshot(snapshot)
    head = "           " + "".join(f"CPU{i:<8}" for i in range(int(snap["nproc"]))) + "\n"
    return head + "\n".join(snap["interrupts_net"]) + "\n"


def nic_tree(tmp_path: Path, name: str, device: str, rx: int = 1, tx: int = 1) -> FakeMachine:
    """A NIC whose sysfs device is `device` (e.g. "0000:00:03.0/virtio2"), with rx/tx queues."""
    m = FakeMachine(tmp_path)
    m.write(f"sys/devices/pci0000:00/{device}/.keep", "")
    m.symlink(f"sys/class/net/{name}/device", str(tmp_path / "sys/devices/pci0000:00" / device))
    for i in range(rx):
        m.write(f"sys/class/net/{name}/queues/rx-{i}/rps_cpus", "0\n")
    for i in range(tx):
        m.write(f"sys/class/net/{name}/queues/tx-{i}/.keep", "")
    return m


@pytest.mark.parametrize(("snapshot", "ifname", "device", "expected"), [
    # virtio-net with MSI-X: the queue vectors, not config; vsock (rx/tx/event) and balloon are not it
    ("cloud-microvm-virtio", "eth0", "0000:00:03.0/virtio2", ["virtio2-input.0", "virtio2-output.0"]),
    # legacy virtio (INTx): one line named after the virtio device carries all queues
    ("qemu-virtio", "ens3", "0000:00:03.0/virtio0", ["virtio0"]),
    # e1000 on INTx names its line after the interface
    ("qemu-e1000", "ens3", "0000:00:03.0", ["ens3"]),
    # four queue pairs; virtio2 is the disk (req.N) and must not be taken
    ("qemu-virtio_tap_mq", "ens3", "0000:00:03.0/virtio0",
     [f"virtio0-{d}.{i}" for i in range(4) for d in ("input", "output")]),
])
def test_nic_queue_interrupts_found_in_real_captures(tmp_path: Path, snapshot: str, ifname: str, device: str,
                                                     expected: list[str]) -> None:
    m = nic_tree(tmp_path, ifname, device)
    text = interrupts_of(snapshot)
    sample = CounterSample(reading(0.0, "", interrupts=text), reading(1.0, "", interrupts=text))
    (st,) = nic_steering(m.roots, [Nic(ifname)], sample)
    assert sorted(i.name for i in st.irqs) == sorted(expected)


def test_interrupt_rates_and_affinity_survive_a_cpu_going_offline(tmp_path: Path) -> None:
    m = nic_tree(tmp_path, "eth0", "0000:00:05.0", rx=2, tx=2)
    m.write("proc/irq/40/smp_affinity_list", "0-3\n")
    m.write("proc/irq/40/effective_affinity_list", "2\n")
    before = ("           CPU0       CPU1       CPU2       CPU3\n"
              " 40:         10 4294967290        100          0  IR-PCI-MSIX-0000:00:05.0    1-edge      eth0-TxRx-0\n"
              " 41:          0          0          0          0  IR-PCI-MSIX-0000:00:05.0    0-edge      eth0-mbx\n")
    after = ("           CPU0       CPU2       CPU3\n"
             " 40:         20        400          0  IR-PCI-MSIX-0000:00:05.0    1-edge      eth0-TxRx-0\n"
             " 41:          0          0          0  IR-PCI-MSIX-0000:00:05.0    0-edge      eth0-mbx\n")
    parsed = parse_interrupts(after)
    assert parsed["40"].counts == {0: 20, 2: 400, 3: 0}
    sample = CounterSample(reading(0.0, "", interrupts=before), reading(2.0, "", interrupts=after))
    (st,) = nic_steering(m.roots, [Nic("eth0", bus_info="0000:00:05.0")], sample)
    assert [i.name for i in st.irqs] == ["eth0-TxRx-0"]  # the mailbox vector is not a queue
    irq = st.irqs[0]
    assert irq.per_s == (10 + 300) / 2  # cpu1 went offline: only the CPUs in both readings count
    assert (irq.affinity, irq.effective) == ("0-3", "2")
    assert (st.rx_queues, st.tx_queues) == (2, 2)


def test_rps_xps_masks_sysctls_and_irqbalance(tmp_path: Path) -> None:
    m = nic_tree(tmp_path, "eth0", "0000:00:03.0", rx=1, tx=2)
    m.write("sys/class/net/eth0/queues/rx-0/rps_cpus", "00000000,0000000f\n")
    m.write("sys/class/net/eth0/queues/tx-0/xps_cpus", "1\n")  # tx-1 has none readable: left out
    m.write("proc/sys/net/core/netdev_budget", "300\n")
    m.write("proc/sys/net/core/netdev_budget_usecs", "2000\n")
    m.write("proc/sys/net/core/netdev_max_backlog", "1000\n")
    m.write("proc/812/comm", "sshd\n")
    sample = CounterSample(reading(0.0, softnet_row(0, 0, 0, 0)), reading(1.0, softnet_row(0, 0, 0, 0)))
    s = collect_softirq(m.roots, [Nic("eth0"), Nic("lo", software_type="loopback")], sample)
    assert [n.nic for n in s.nics] == ["eth0"]
    assert s.nics[0].rps_cpus == {"rx-0": "00000000,0000000f"} and s.nics[0].xps_cpus == {"tx-0": "1"}
    assert (s.netdev_budget, s.netdev_budget_usecs, s.netdev_max_backlog) == (300, 2000, 1000)
    assert s.irqbalance is False
    m.write("proc/977/comm", "irqbalance\n")
    assert collect_softirq(m.roots, [], sample).irqbalance is True


def test_collect_facts_fills_softirq_and_it_round_trips(tmp_path: Path) -> None:
    m = FakeMachine(tmp_path)
    m.set_cpus(2)
    m.add_nic("eth0", driver="virtio_net", bus="virtio", queues=1)
    sample = CounterSample(reading(0.0, softnet_row(5, 0, 0, 0) + softnet_row(5, 0, 0, 1)),
                           reading(1.0, softnet_row(9, 0, 0, 0) + softnet_row(5, 0, 0, 1)))
    facts = m.collect(counters=sample)
    assert facts.softirq is not None and facts.softirq.cpus[0].processed_per_s == 4.0
    again = facts_from_dict(json.loads(json.dumps(facts.to_dict())))
    assert again.softirq == facts.softirq


# --- checks -------------------------------------------------------------------------------------------


def judged(cpus: list[SoftnetCpu], *, vcpus: int = 2, steering: Optional[list[NicSteering]] = None,
           irqbalance: Optional[bool] = False, **kw) -> dict[str, list]:
    facts = Facts(host=Host(vcpus=vcpus))
    facts.nics = [Nic("eth0", kind="paravirtual", driver="virtio_net", operstate="up")]
    facts.softirq = Softirq(cpus=cpus, nics=steering or [], irqbalance=irqbalance, netdev_budget=300,
                            netdev_budget_usecs=2000, netdev_max_backlog=1000, **kw)
    out: dict[str, list] = {}
    for f in check.run(*with_recorded(facts)):
        out.setdefault(f.id, []).append(f)
    return out


def test_drops_in_the_sample_warn_with_a_bigger_backlog() -> None:
    found = judged([SoftnetCpu(0, dropped=30, dropped_per_s=30.0), SoftnetCpu(1)])
    (f,) = found["SOFTIRQ-DROPS"]
    assert f.severity.label == "warning" and f.subject == "cpu0"
    assert "net.core.netdev_max_backlog=4096" in f.fix


def test_drops_only_since_boot_are_info_and_no_drops_nothing() -> None:
    assert judged([SoftnetCpu(0, dropped_since_boot=12)])["SOFTIRQ-DROPS"][0].severity.label == "info"
    assert "SOFTIRQ-DROPS" not in judged([SoftnetCpu(0), SoftnetCpu(1)])


def test_squeeze_warns_with_doubled_budget() -> None:
    (f,) = judged([SoftnetCpu(0, squeezed=20, squeezed_per_s=20.0)])["SOFTIRQ-SQUEEZE"]
    assert "net.core.netdev_budget=600" in f.fix and "netdev_budget_usecs=4000" in f.fix
    assert "SOFTIRQ-SQUEEZE" not in judged([SoftnetCpu(0, squeezed=0, squeezed_since_boot=5)])


def test_net_rx_imbalance_needs_load_and_a_dominant_cpu() -> None:
    (f,) = judged([SoftnetCpu(0, net_rx_per_s=9000.0), SoftnetCpu(1, net_rx_per_s=500.0)])["SOFTIRQ-IMBALANCE"]
    assert f.subject == "cpu0" and f.evidence["share"] == round(9000 / 9500, 3)
    assert "SOFTIRQ-IMBALANCE" not in judged([SoftnetCpu(0, net_rx_per_s=900.0), SoftnetCpu(1, net_rx_per_s=0.0)])
    assert "SOFTIRQ-IMBALANCE" not in judged([SoftnetCpu(0, net_rx_per_s=5000.0),
                                              SoftnetCpu(1, net_rx_per_s=4000.0)])
    assert "SOFTIRQ-IMBALANCE" not in judged([SoftnetCpu(0, net_rx_per_s=9000.0)], vcpus=1)


def single_queue(rps: str = "0", irqs: Optional[list[NicIrq]] = None) -> NicSteering:
    return NicSteering("eth0", rx_queues=1, tx_queues=1, rps_cpus={"rx-0": rps}, irqs=irqs or [])


def test_no_rps_on_single_queue_nic_info_when_idle_warning_under_load() -> None:
    (f,) = judged([SoftnetCpu(0), SoftnetCpu(1)], vcpus=4, steering=[single_queue()])["SOFTIRQ-NO-RPS"]
    assert f.severity.label == "info"
    assert f.fix == "guestcheck tune rps eth0"
    assert "echo f > /sys/class/net/eth0/queues/rx-0/rps_cpus" in f.hint
    loaded = judged([SoftnetCpu(0, net_rx_per_s=9000.0), SoftnetCpu(1, net_rx_per_s=10.0)], steering=[single_queue()])
    assert loaded["SOFTIRQ-NO-RPS"][0].severity.label == "warning"
    assert "SOFTIRQ-NO-RPS" not in judged([SoftnetCpu(0)], steering=[single_queue("3")])
    assert "SOFTIRQ-NO-RPS" not in judged([SoftnetCpu(0)], vcpus=1, steering=[single_queue()])


def test_cpu_mask_for_many_cpus_uses_32bit_groups() -> None:
    assert first_cpus_mask(4) == "f"
    assert first_cpus_mask(40) == "ff,ffffffff"
    assert cpu_bitmap([39]) == "80,00000000" and cpu_bitmap([]) == "0"


def multi_queue(effective: list[str], xps: Optional[dict[str, str]] = None) -> NicSteering:
    irqs = [NicIrq(str(30 + i), f"virtio0-input.{i}", affinity="0-3", effective=e) for i, e in enumerate(effective)]
    return NicSteering("eth0", rx_queues=len(effective), tx_queues=len(effective),
                       rps_cpus={f"rx-{i}": "0" for i in range(len(effective))},
                       xps_cpus=xps or {f"tx-{i}": f"{1 << i:x}" for i in range(len(effective))}, irqs=irqs)


def test_all_queue_interrupts_on_one_cpu() -> None:
    found = judged([SoftnetCpu(0)], vcpus=4, steering=[multi_queue(["0", "0", "0", "0"])])
    (f,) = found["IRQ-AFFINITY-ONE-CPU"]
    assert f.summary == "all 4 queue interrupts run on cpu0"
    assert "echo 3 > /proc/irq/33/smp_affinity_list" in f.fix
    assert found["IRQBALANCE-MISSING"][0].severity.label == "info"
    spread = judged([SoftnetCpu(0)], vcpus=4, steering=[multi_queue(["0", "1", "2", "3"])])
    assert "IRQ-AFFINITY-ONE-CPU" not in spread and "IRQBALANCE-MISSING" not in spread
    running = judged([SoftnetCpu(0)], vcpus=4, steering=[multi_queue(["0", "0"])], irqbalance=True)
    assert "IRQBALANCE-MISSING" not in running and "IRQ-AFFINITY-ONE-CPU" in running


def test_single_queue_irq_on_one_cpu_is_no_affinity_warning_but_irqbalance_info() -> None:
    nic = single_queue("3", irqs=[NicIrq("11", "ens3", affinity="0-1", effective="0")])
    found = judged([SoftnetCpu(0)], steering=[nic])
    assert "IRQ-AFFINITY-ONE-CPU" not in found
    assert found["IRQBALANCE-MISSING"][0].subject == "eth0"


def test_xps_unmapped_on_multi_queue_nic() -> None:
    found = judged([SoftnetCpu(0)], vcpus=2, steering=[multi_queue(["0", "1"], xps={"tx-0": "0", "tx-1": "0"})])
    (f,) = found["SOFTIRQ-NO-XPS"]
    assert f.fix.splitlines() == ["echo 1 > /sys/class/net/eth0/queues/tx-0/xps_cpus",
                                  "echo 2 > /sys/class/net/eth0/queues/tx-1/xps_cpus"]
    assert "SOFTIRQ-NO-XPS" not in judged([SoftnetCpu(0)], vcpus=2, steering=[multi_queue(["0", "1"])])


def test_old_facts_without_softirq_judge_to_nothing() -> None:
    assert check.run(*with_recorded(Facts())) == []


def test_backlog_drops_link_to_the_shipped_profile_that_raises_the_backlog_and_to_rps() -> None:
    """Issue 11 item 6: SOFTIRQ-DROPS names net.core.netdev_max_backlog, RPS and `guestcheck tune`, and the
    profile it names is one that ships and raises the backlog at least as far as the finding's own fix."""
    from guestcheck.checks import catalog
    from guestcheck.tune.profile import Loader

    (f,) = judged([SoftnetCpu(0, dropped=30, dropped_per_s=30.0), SoftnetCpu(1)])["SOFTIRQ-DROPS"]
    assert f.evidence["or"].startswith(f"guestcheck tune apply {check.BACKLOG_PROFILE} ")
    assert "guestcheck tune rps IFACE" in f.evidence["rps"]
    doc = catalog()["SOFTIRQ-DROPS"].fix
    assert "net.core.netdev_max_backlog" in doc and "RPS" in doc
    assert f"guestcheck tune apply {check.BACKLOG_PROFILE}" in doc
    loader = Loader([str(Path(__file__).resolve().parents[2] / "profiles")])
    setting = loader.load(check.BACKLOG_PROFILE).settings["net.core.netdev_max_backlog"]
    suggested = int(f.fix.split("net.core.netdev_max_backlog=")[1].split()[0])
    assert setting.raise_only and int(setting.value) >= suggested
    # no shipped profile raises netdev_budget, so SOFTIRQ-SQUEEZE names none (its fix is the sysctl itself)
    assert not any("net.core.netdev_budget" in loader.load(n).settings for n in loader.available())
    assert "guestcheck tune apply" not in catalog()["SOFTIRQ-SQUEEZE"].fix
