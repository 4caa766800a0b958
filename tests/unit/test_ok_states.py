"""Every NIC, offload, queue and softirq finding has a state of the machine in which it is absent.

For each finding id the first facts raise it and the second are the same machine after its fix: the id must be
gone, so no check can warn forever (QUEUES-SINGLE-VIRTIO on Firecracker once RPS covers the vCPUs).
"""

from __future__ import annotations

import copy
from typing import Callable

import pytest

from guestcheck.checks import nic as nic_check
from guestcheck.checks import offload, queues, softirq
from guestcheck.doctor import build_report
from guestcheck.facts import (
    Channels,
    Evidence,
    Facts,
    Feature,
    Host,
    Nic,
    NicIrq,
    NicSteering,
    Path,
    Route,
    Softirq,
    SoftnetCpu,
    Virt,
)

ON = Feature(True, False, True, True, False)
OFF = Feature(False, False, False, True, False)
FIXED_OFF = Feature(False, True, False, False, False)
FEATURES = ("tx-scatter-gather", "tx-checksum-ip-generic", "tx-tcp-segmentation", "tx-tcp6-segmentation",
            "tx-generic-segmentation", "rx-gro", "rx-checksum")


def base() -> Facts:
    nic = Nic(name="eth0", ifindex=2, driver="virtio_net", driver_sysfs="virtio_net", bus="virtio",
              has_device=True, has_physfn=False, devtype="", markers=[], lowers=[], operstate="up", admin_up=True,
              carrier=True, link_type=1, mac="52:54:00:12:34:56", features={n: ON for n in FEATURES},
              channels=Channels(max_combined=4, combined=4), rx_queues=4, tx_queues=4)
    steering = NicSteering("eth0", 4, 4, rps_cpus={f"rx-{i}": "0" for i in range(4)},
                           xps_cpus={f"tx-{i}": format(1 << i, "x") for i in range(4)},
                           irqs=[NicIrq(str(30 + i), f"virtio0-input.{i}", affinity=str(i)) for i in range(4)])
    cpus = [SoftnetCpu(i, net_rx_per_s=500.0) for i in range(4)]
    return Facts(host=Host(vcpus=4), virt=Virt(hypervisor="kvm"), nics=[nic],
                 softirq=Softirq(cpus=cpus, nics=[steering], irqbalance=True, netdev_budget=300,
                                 netdev_budget_usecs=2000, netdev_max_backlog=1000),
                 path=Path(routes=[Route("ipv4", dev="eth0", gateway="10.0.0.1")]), sample_seconds=1)


def eth0(f: Facts) -> Nic:
    return f.nics[0]


def steer(f: Facts) -> NicSteering:
    return f.softirq.nics[0]


def single_queue(f: Facts) -> None:
    eth0(f).channels = Channels(max_combined=1, combined=1)
    eth0(f).rx_queues = eth0(f).tx_queues = 1
    f.softirq.nics[0] = NicSteering("eth0", 1, 1, rps_cpus={"rx-0": "0"}, xps_cpus={"tx-0": "0"})


def feature(name: str, state: Feature) -> Callable[[Facts], None]:
    return lambda f: eth0(f).features.__setitem__(name, state)


def both(*steps: Callable[[Facts], None]) -> Callable[[Facts], None]:
    def run(f: Facts) -> None:
        for step in steps:
            step(f)
    return run


def firecracker(f: Facts) -> None:
    """The evidence, not the verdict: build_report() decides the platform from it, as for a saved facts file."""
    f.virt.evidence.append(Evidence("acpi", "/sys/firmware/acpi/tables/DSDT OEM ID", "FIRECK"))


def emulated(f: Facts) -> None:
    n = eth0(f)
    n.driver = n.driver_sysfs = "e1000"
    n.bus, n.pci_id, n.pci_subsystem_id = "pci", "8086:100e", "1af4:1100"


# finding id -> (make the condition, apply the fix); the fix runs on a copy of the condition
CASES = {
    "NIC-EMULATED": (emulated, lambda f: eth0(f).__setattr__("driver", "virtio_net") or
                     eth0(f).__setattr__("driver_sysfs", "virtio_net")),
    "NIC-UNKNOWN": (both(lambda f: [setattr(eth0(f), k, "r8152") for k in ("driver", "driver_sysfs")],
                         lambda f: setattr(eth0(f), "bus", "usb")),
                    lambda f: [setattr(eth0(f), k, "virtio_net") for k in ("driver", "driver_sysfs")]),
    "NIC-NONE": (lambda f: setattr(eth0(f), "operstate", "down"), lambda f: setattr(eth0(f), "operstate", "up")),
    "OFFLOAD-TSO-OFF": (both(feature("tx-tcp-segmentation", OFF), feature("tx-tcp6-segmentation", OFF)),
                        both(feature("tx-tcp-segmentation", ON), feature("tx-tcp6-segmentation", ON))),
    "OFFLOAD-GSO-OFF": (feature("tx-generic-segmentation", OFF), feature("tx-generic-segmentation", ON)),
    "OFFLOAD-GRO-OFF": (feature("rx-gro", OFF), feature("rx-gro", ON)),
    "OFFLOAD-RXCSUM-OFF": (feature("rx-checksum", OFF), feature("rx-checksum", ON)),
    "OFFLOAD-TXCSUM-OFF": (feature("tx-checksum-ip-generic", OFF), feature("tx-checksum-ip-generic", ON)),
    "OFFLOAD-SG-OFF": (feature("tx-scatter-gather", OFF), feature("tx-scatter-gather", ON)),
    "OFFLOAD-BACKEND-NONE": (feature("tx-checksum-ip-generic", FIXED_OFF), feature("tx-checksum-ip-generic", ON)),
    "OFFLOAD-UNKNOWN": (lambda f: setattr(eth0(f), "features", None),
                        lambda f: setattr(eth0(f), "features", {n: ON for n in FEATURES})),
    "QUEUES-FEWER-THAN-VCPUS": (lambda f: setattr(eth0(f), "channels", Channels(max_combined=4, combined=1)),
                                lambda f: setattr(eth0(f), "channels", Channels(max_combined=4, combined=4))),
    "QUEUES-SINGLE-VIRTIO": (both(firecracker, single_queue), lambda f: steer(f).rps_cpus.update({"rx-0": "f"})),
    "SOFTIRQ-DROPS": (lambda f: setattr(f.softirq.cpus[0], "dropped", 5),
                      lambda f: setattr(f.softirq.cpus[0], "dropped", 0)),
    "SOFTIRQ-SQUEEZE": (lambda f: setattr(f.softirq.cpus[0], "squeezed_per_s", 5.0),
                        lambda f: setattr(f.softirq.cpus[0], "squeezed_per_s", 0.0)),
    "SOFTIRQ-IMBALANCE": (lambda f: setattr(f.softirq.cpus[0], "net_rx_per_s", 50000.0),
                          lambda f: [setattr(c, "net_rx_per_s", 50000.0) for c in f.softirq.cpus]),
    "SOFTIRQ-NO-RPS": (single_queue, lambda f: steer(f).rps_cpus.update({"rx-0": "f"})),
    "SOFTIRQ-NO-XPS": (lambda f: steer(f).xps_cpus.update({q: "0" for q in steer(f).xps_cpus}),
                       lambda f: steer(f).xps_cpus.update({f"tx-{i}": format(1 << i, "x") for i in range(4)})),
    "IRQ-AFFINITY-ONE-CPU": (lambda f: [setattr(i, "affinity", "0") for i in steer(f).irqs],
                             lambda f: [setattr(i, "affinity", str(n)) for n, i in enumerate(steer(f).irqs)]),
    "IRQBALANCE-MISSING": (both(lambda f: [setattr(i, "affinity", "0") for i in steer(f).irqs],
                                lambda f: setattr(f.softirq, "irqbalance", False)),
                           lambda f: setattr(f.softirq, "irqbalance", True)),
}

IDS = set()
for module in (nic_check, offload, queues, softirq):
    IDS |= {i for i, doc in module.FINDINGS.items() if doc.severity != "ok"}


def test_every_finding_has_a_case():
    assert set(CASES) == IDS


def test_the_healthy_machine_raises_none_of_them():
    assert not IDS & {f.id for f in build_report(base()).findings}


@pytest.mark.parametrize("finding_id", sorted(CASES))
def test_the_fix_clears_the_finding(finding_id):
    make, fix = CASES[finding_id]
    bad = base()
    make(bad)
    assert finding_id in {f.id for f in build_report(bad).findings}
    good = copy.deepcopy(bad)
    fix(good)
    assert finding_id not in {f.id for f in build_report(good).findings}


def test_doctor_v_shows_an_ok_line_for_conntrack_offloads_and_rings():
    """`doctor -v` says it shows every check: the healthy areas have their OK line, as memory and steal do."""
    from guestcheck.facts import Conntrack, Rings
    from guestcheck.render.human import render

    f = base()
    eth0(f).rings = Rings(rx_max=1024, tx_max=1024, rx=1024, tx=1024)
    f.conntrack = Conntrack(loaded=True, count=12, max=65536, since_boot={"drop": 0}, in_sample={"drop": 0})
    report = build_report(f)
    ok = {(x.id, x.subject): x.summary for x in report.findings if x.severity == 0}
    assert ok[("CONNTRACK-OK", "conntrack")] == "conntrack table 0% full (12 of 65536 entries), no drops"
    assert ok[("OFFLOAD-ON", "eth0")] == "offloads on: TSO, GSO, GRO, RX checksum, TX checksum, scatter-gather"
    assert ok[("RING-RX-OK", "eth0")] == "RX ring 1024 of 1024 descriptors (its maximum)"
    text = render(report, verbose=True)
    for line in ("  OK       CONNTRACK-OK [conntrack] conntrack table 0% full",
                 "  OK       OFFLOAD-ON [eth0] offloads on: TSO",
                 "  OK       RING-RX-OK [eth0] RX ring 1024 of 1024"):
        assert line in text, text
    assert "OK  " not in render(report)  # without -v, only warnings and worse
