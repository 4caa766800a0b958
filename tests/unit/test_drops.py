"""Drop and limit counters judged: ENA allowances, per-queue driver counters, the interface's drop counters.

Counter names come from the drivers' own tables (tests/unit/driver_stats.py names each source).
"""

from __future__ import annotations

import copy
from typing import Optional

import pytest

from guestcheck.checks import catalog, drops, rings
from guestcheck.collect.nic_counters import NicReading, nic_counters
from guestcheck.doctor import build_report
from guestcheck.drivercounters import INTERFACE_COUNTERS, curated
from guestcheck.facts import Facts, Host, Nic, NicCounters, NicIrq, NicSteering, Rings, Softirq, SoftnetCpu
from guestcheck.findings import Severity, Status
from guestcheck.render import prometheus
from guestcheck.report import Report
from tests.judged import with_recorded
from tests.unit import driver_stats
from tests.unit.test_prometheus import parse

IFACE = INTERFACE_COUNTERS
NEW_IDS = ("NIC-ALLOWANCE-EXCEEDED", "NIC-QUEUE-DROPS", "NIC-DROPS", "RING-RX-DROPS", "RING-RX-SMALL")


def counters(name: str, driver: Optional[dict], after_driver: Optional[dict] = None, *, iface: Optional[dict] = None,
             after_iface: Optional[dict] = None, sampled: bool = True) -> NicCounters:
    """One NIC's counters from two readings one second apart (or one reading, not sampled)."""
    b_iface = dict.fromkeys(IFACE, 0) | (iface or {})
    a_iface = b_iface | (after_iface or {})
    before = NicReading(10.0, b_iface, driver)
    after = NicReading(11.0, a_iface, after_driver if after_driver is not None else driver)
    return nic_counters(name, before if sampled else after, after)


def facts(nic: Nic, c: NicCounters, steering: Optional[NicSteering] = None, softnet_dropped: int = 0) -> Facts:
    return Facts(host=Host(vcpus=4), nics=[nic], nic_counters=[c],
                 softirq=Softirq(cpus=[SoftnetCpu(1, dropped=softnet_dropped)], nics=[steering] if steering else [],
                                 netdev_max_backlog=1000))


def ena_nic(**kw) -> Nic:
    return Nic(name="eth0", driver="ena", driver_version="2.8.3g", link_type=1, kind="paravirtual", **kw)


def found(f: Facts, finding_id: str):
    return [x for x in drops.run(*with_recorded(f)) + rings.run(*with_recorded(f)) if x.id == finding_id]


# --- AWS ENA allowances (amzn/amzn-drivers kernel/linux/ena/ena_ethtool.c ena_hw_stats_strings;
#     ENA_Linux_Best_Practices.rst: "pps_allowance_exceeded/bw_out_allowance_exceeded stats would indicate it") ---

def test_an_allowance_rising_during_the_sample_is_critical_with_host_side_remedies():
    c = counters("eth0", driver_stats.ena(pps_allowance_exceeded=10, conntrack_allowance_available=900),
                 driver_stats.ena(pps_allowance_exceeded=250, conntrack_allowance_available=880))
    [f] = found(facts(ena_nic(), c), "NIC-ALLOWANCE-EXCEEDED")
    assert f.severity is Severity.CRITICAL and f.fix_on == "host"
    assert "pps_allowance_exceeded +240 (240/s)" in f.summary
    assert f.evidence["conntrack_allowance_available"] == 880
    assert f.evidence["counters"]["pps_allowance_exceeded"] == {"total": 250, "rise": 240, "per_s": 240.0}
    lines = f.fix.split("\n")
    assert lines[0].startswith("AWS, packets per second: a larger instance type")
    assert any("ENA Express" in line for line in lines)  # single-flow remedy for pps/bandwidth
    assert all(line.startswith("AWS") for line in lines)  # labelled lines, one remedy each


def test_an_allowance_risen_since_boot_only_is_a_warning():
    c = counters("eth0", driver_stats.ena(conntrack_allowance_exceeded=5, bw_in_allowance_exceeded=2))
    [f] = found(facts(ena_nic(), c), "NIC-ALLOWANCE-EXCEEDED")
    assert f.severity is Severity.WARNING and "not during the sample" in f.summary
    assert {line.split(":")[0] for line in f.fix.split("\n")} >= {"AWS, tracked connections", "AWS, bandwidth in"}


def test_all_allowances_zero_or_a_driver_too_old_to_count_them_finds_nothing():
    assert found(facts(ena_nic(), counters("eth0", driver_stats.ena())), "NIC-ALLOWANCE-EXCEEDED") == []
    old = counters("eth0", driver_stats.ena(metrics=False, queue_0_tx_cnt=5))  # ENA < 2.2.10: no such names
    assert found(facts(ena_nic(), old), "NIC-ALLOWANCE-EXCEEDED") == []


def test_the_gauge_is_not_a_counter():
    c = counters("eth0", driver_stats.ena(conntrack_allowance_available=10),
                 driver_stats.ena(conntrack_allowance_available=500))
    assert "conntrack_allowance_available" not in c.driver and c.gauges["conntrack_allowance_available"] == 500
    assert found(facts(ena_nic(), c), "NIC-ALLOWANCE-EXCEEDED") == []


# --- per-queue counters, named with their queue and its CPU ---

def virtio_steering() -> NicSteering:
    irqs = [NicIrq("24", "virtio0-config", affinity="0"), NicIrq("25", "virtio0-input.0", affinity="1"),
            NicIrq("26", "virtio0-output.0", affinity="2"), NicIrq("27", "virtio0-input.1", affinity="3"),
            NicIrq("28", "virtio0-output.1", affinity="0")]
    return NicSteering("eth0", 2, 2, rps_cpus={"rx-0": "0", "rx-1": "c"}, xps_cpus={"tx-0": "4", "tx-1": "1"},
                       irqs=irqs)


@pytest.mark.parametrize("build,rx1,tx0", [
    (driver_stats.virtio_old, "rx_queue_1_drops", "tx_queue_0_xdp_tx_drops"),  # Linux <= 6.9
    (driver_stats.virtio_new, "rx1_drops", "tx0_xdp_tx_drops"),  # Linux >= 6.10 (this machine's `ethtool -S`)
])
def test_virtio_queue_drops_name_the_queue_and_its_cpu(build, rx1, tx0):
    c = counters("eth0", build(), build(**{rx1: 30, tx0: 2}))
    nic = Nic(name="eth0", driver="virtio_net", link_type=1, kind="paravirtual")
    [f] = found(facts(nic, c, virtio_steering()), "NIC-QUEUE-DROPS")
    assert f.severity is Severity.WARNING and f.fix == ""
    assert "rx-1 drops +30 (30/s) on cpu3 (IRQ 27 virtio0-input.1); RPS cpus 2,3" in f.summary
    assert "tx-0 xdp_tx_drops +2 (2/s) on cpu2 (IRQ 26 virtio0-output.0); XPS cpus 2" in f.summary
    assert f.evidence["counters"][rx1]["queue"] == "rx-1"


def test_ena_queue_stops_since_boot_are_info_and_name_the_combined_vector():
    # ena's IRQ names: "ena-mgmnt@pci:..." and "eth0-Tx-Rx-N" (ena_netdev.c ena_setup_io_intr)
    steering = NicSteering("eth0", 2, 2, irqs=[NicIrq("40", "eth0-Tx-Rx-0", affinity="0"),
                                                NicIrq("41", "eth0-Tx-Rx-1", effective="1", affinity="0-3")])
    c = counters("eth0", driver_stats.ena(queues=2, queue_1_tx_queue_stop=12))
    [f] = found(facts(ena_nic(), c, steering), "NIC-QUEUE-DROPS")
    assert f.severity is Severity.INFO
    assert f.summary.endswith("tx-1 tx_queue_stop 12 on cpu1 (IRQ 41 eth0-Tx-Rx-1)")


def test_netvsc_device_wide_counters():
    # drivers/net/hyperv/netvsc_drv.c netvsc_stats[]: rx_no_memory, tx_no_space (not per queue)
    c = counters("eth0", driver_stats.netvsc(), driver_stats.netvsc(rx_no_memory=4, tx_no_space=1))
    nic = Nic(name="eth0", driver="hv_netvsc", link_type=1, kind="paravirtual")
    [f] = found(facts(nic, c), "NIC-QUEUE-DROPS")
    assert "rx_no_memory +4 (4/s)" in f.summary and "tx_no_space +1 (1/s)" in f.summary
    assert f.evidence["counters"]["rx_no_memory"]["queue"] is None


def test_only_curated_names_are_kept():
    kept = [n for n in driver_stats.ena(queues=8) if curated(n)]
    assert sorted(kept) == sorted([f"{a}_allowance_exceeded" for a in ("bw_in", "bw_out", "pps", "conntrack",
                                                                       "linklocal")]
                                  + ["conntrack_allowance_available"] + [f"queue_{q}_tx_queue_stop" for q in range(8)])
    assert not any(curated(n) for n in driver_stats.netvsc() if n not in ("rx_no_memory", "tx_no_space"))
    assert curated("rx_queue_0_xdp_drops") is None  # an XDP program's own verdict, not a loss


# --- the interface's drop counters: the cause decides the fix ---

def test_rx_dropped_rising_with_softnet_drops_is_the_backlog():
    c = counters("veth0", {}, iface={"rx_dropped": 5}, after_iface={"rx_dropped": 105})
    nic = Nic(name="veth0", link_type=1, kind="software", software_type="veth")
    [f] = found(facts(nic, c, softnet_dropped=100), "NIC-DROPS")
    assert f.severity is Severity.WARNING and "rx_dropped +100 (100/s)" in f.summary
    assert "backlog" in f.evidence["cause"]
    assert f.fix.startswith("sysctl -w net.core.netdev_max_backlog=4096\ncat > /etc/sysctl.d/")


def test_rx_dropped_alone_is_explained_not_fixed():
    c = counters("eth0", driver_stats.virtio_old(), iface={"rx_dropped": 0}, after_iface={"rx_dropped": 40})
    nic = Nic(name="eth0", driver="virtio_net", link_type=1, kind="paravirtual")
    [f] = found(facts(nic, c), "NIC-DROPS")
    assert f.fix == "" and "unknown protocol" in f.evidence["cause"]
    assert f.evidence["look"][0] == "ip -s -s link show dev eth0"


def test_ring_overflow_at_the_ring_maximum_is_nic_drops_with_spreading_advice():
    c = counters("eth0", None, iface={"rx_missed_errors": 0}, after_iface={"rx_missed_errors": 9})
    nic = Nic(name="eth0", driver="e1000", link_type=1, kind="emulated", rings=Rings(rx_max=4096, rx=4096))
    [f] = found(facts(nic, c), "NIC-DROPS")
    assert "cannot keep up" in f.evidence["cause"] and found(facts(nic, c), "RING-RX-DROPS") == []


def test_since_boot_only_is_info_and_names_are_quoted_in_what_to_look_at():
    c = counters("we ird", {}, iface={"tx_dropped": 3})
    nic = Nic(name="we ird", link_type=1, kind="software")
    [f] = found(facts(nic, c), "NIC-DROPS")
    assert f.severity is Severity.INFO and f.evidence["look"][1] == "tc -s qdisc show dev 'we ird'"


# --- failed sends attributed by the counter that moved (issue 19: a too-large frame was blamed on a full queue) ---

def _vxlan(mtu: int = 1500, lower_mtu: int = 1400):
    from guestcheck.facts import Tunnel

    nic = Nic(name="vxa", driver="vxlan", link_type=1, kind="software", software_type="vxlan")
    tunnel = Tunnel(name="vxa", kind="vxlan", mtu=mtu, family="ipv4", remote="10.99.1.3", lower="va0",
                    lower_mtu=lower_mtu, lower_source="route", overhead=50,
                    overhead_detail="20 IPv4 + 8 UDP + 8 VXLAN + 14 Ethernet")
    return nic, tunnel


def test_tx_aborted_on_a_tunnel_names_the_counter_and_the_mtu_finding_not_a_full_queue():
    nic, tunnel = _vxlan()
    c = counters("vxa", None, after_iface={"tx_errors": 3, "tx_aborted_errors": 3})
    f = facts(nic, c)
    f.tunnels = [tunnel]
    [found] = [x for x in drops.run(*with_recorded(f)) if x.id == "NIC-DROPS"]
    assert "tx_aborted_errors +3" in found.summary and "TUNNEL-MTU on vxa" in found.summary
    assert found.evidence["transmit"].startswith("tx_aborted_errors: the send was aborted")
    assert "full transmit queue" not in found.evidence["transmit"]
    assert "ip link set dev vxa mtu 1350" in found.evidence["transmit"]
    assert found.evidence["see"].startswith("TUNNEL-MTU [vxa]: vxlan MTU 1500 + 50 bytes")


def test_tx_dropped_on_a_tunnel_is_the_encapsulation_where_newer_kernels_count_it():
    """From 6.x a vxlan counts a refused outer packet as tx_dropped (per-CPU dstats), not tx_aborted_errors."""
    nic, tunnel = _vxlan()
    f = facts(nic, counters("vxa", None, after_iface={"tx_dropped": 1}, sampled=False))
    f.tunnels = [tunnel]
    [found] = [x for x in drops.run(*with_recorded(f)) if x.id == "NIC-DROPS"]
    assert found.severity is Severity.INFO and "TUNNEL-MTU on vxa" in found.summary
    assert found.evidence["transmit"].startswith("tx_dropped: the tunnel dropped packets it could not encapsulate")


def test_each_transmit_counter_has_its_own_cause_on_a_plain_nic():
    nic = Nic(name="eth0", driver="virtio_net", link_type=1, kind="paravirtual")
    carrier = counters("eth0", None, after_iface={"tx_errors": 2, "tx_carrier_errors": 2})
    [found] = [x for x in drops.run(*with_recorded(facts(nic, carrier))) if x.id == "NIC-DROPS"]
    assert found.evidence["transmit"] == "tx_carrier_errors: no carrier: the link or its peer was down"
    assert "see" not in found.evidence and "TUNNEL-MTU" not in found.summary
    dropped = counters("eth0", None, after_iface={"tx_dropped": 5})
    [found] = [x for x in drops.run(*with_recorded(facts(nic, dropped))) if x.id == "NIC-DROPS"]
    assert "a full transmit queue or ring" in found.evidence["transmit"]
    bare = counters("eth0", None, after_iface={"tx_errors": 1})
    [found] = [x for x in drops.run(*with_recorded(facts(nic, bare))) if x.id == "NIC-DROPS"]
    assert found.evidence["transmit"].startswith("tx_errors: the driver could not send (no detail counter")
    nohandler = counters("eth0", None, after_iface={"rx_nohandler": 7})
    [found] = [x for x in drops.run(*with_recorded(facts(nic, nohandler))) if x.id == "NIC-DROPS"]
    assert "rx_nohandler +7" in found.summary and "inactive port" in found.evidence["nohandler"]


# --- every new id: explained, and absent once the machine is in order ---

def test_every_new_id_is_explained():
    docs = catalog()
    for finding_id in NEW_IDS:
        assert docs[finding_id].why and docs[finding_id].fix
    assert docs["NIC-ALLOWANCE-EXCEEDED"].fix_on == "host"


def test_ok_states_quiet_counters_and_a_full_ring_find_nothing():
    nic = ena_nic(rings=Rings(rx_max=16384, rx=1024, tx_max=1024, tx=1024))
    noisy = counters("eth0", driver_stats.ena(queues=2, pps_allowance_exceeded=1, queue_0_tx_queue_stop=1),
                     driver_stats.ena(queues=2, pps_allowance_exceeded=9, queue_0_tx_queue_stop=5),
                     iface={"rx_dropped": 1}, after_iface={"rx_dropped": 8, "tx_errors": 1})
    raised = {f.id for f in drops.run(*with_recorded(facts(nic, noisy))) + rings.run(*with_recorded(facts(nic, noisy)))}
    assert raised == set(NEW_IDS) - {"RING-RX-SMALL"}  # ENA rx_dropped is its ring overflowing
    small = copy.deepcopy(nic)
    small_facts = facts(small, counters("eth0", driver_stats.ena(queues=2)))
    assert {f.id for f in rings.run(*with_recorded(small_facts))} == {"RING-RX-SMALL"}
    # after the fixes: a larger instance (counters at 0 on a fresh boot), the ring at its maximum
    nic.rings = Rings(rx_max=16384, rx=16384, tx_max=1024, tx=1024)
    quiet = counters("eth0", driver_stats.ena(queues=2))
    report = build_report(facts(nic, quiet))
    assert not {f.id for f in report.findings} & set(NEW_IDS)


# --- Prometheus: curated series only ---

def test_prometheus_exports_a_few_series_per_device_not_every_driver_counter():
    ena = counters("eth0", driver_stats.ena(queues=8, pps_allowance_exceeded=7, conntrack_allowance_available=99))
    virtio = counters("eth1", driver_stats.virtio_new(queues=4, rx2_drops=3))
    f = Facts(nics=[ena_nic(), Nic(name="eth1", link_type=1)], nic_counters=[ena, virtio])
    samples = parse(prometheus.render(Report(f, [], Status.OK)))
    nic = [(n, lab, v) for n, lab, v in samples if n.startswith("guestcheck_nic_")]
    per_device = {d: sum(1 for _, lab, _ in nic if lab["interface"] == d) for d in ("eth0", "eth1")}
    assert len(driver_stats.ena(queues=8)) == 8 + 6 + 8 * (15 + 22) + 5  # 315 names in `ethtool -S`
    n = len(INTERFACE_COUNTERS)  # 9: rx_nohandler, tx_aborted_errors and tx_carrier_errors too (issue 19)
    assert per_device == {"eth0": n + 5 + 1 + 8, "eth1": n + 4 + 4}  # interface, allowances, gauge, queues
    assert ("guestcheck_nic_allowance_exceeded_total", {"interface": "eth0", "allowance": "pps"}, 7.0) in nic
    assert ("guestcheck_nic_conntrack_allowance_available", {"interface": "eth0"}, 99.0) in nic
    assert ("guestcheck_nic_driver_drops_total", {"interface": "eth1", "queue": "rx-2", "counter": "drops"}, 3.0) in nic
    assert all(n.endswith("_total") or n == "guestcheck_nic_conntrack_allowance_available" for n, _, _ in nic)


def test_two_spellings_of_one_counter_make_one_series():
    c = counters("eth0", {"rx_queue_0_drops": 1, "rx0_drops": 2})
    samples = parse(prometheus.render(Report(Facts(nic_counters=[c]), [], Status.OK)))
    assert len([s for s in samples if s[0] == "guestcheck_nic_driver_drops_total"]) == 1
