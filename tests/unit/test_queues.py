"""checks/queues.py: queue advice with every number filled in, and RPS as the whole fix where the host has no more."""

from __future__ import annotations

from guestcheck.checks import queues
from guestcheck.facts import Channels, Facts, Feature, Host, Nic, NicSteering, Path, Route, Softirq, Virt
from guestcheck.judge.virt import FIRECRACKER_CAVEAT
from tests.judged import with_recorded

GRO_ON = {"rx-gro": Feature(True, False, True, True, False)}


def facts(nic: Nic, vcpus: int = 4, hypervisor: str = "kvm", rps: str = "0", default_dev: str = "eth0") -> Facts:
    return Facts(host=Host(vcpus=vcpus), virt=Virt(hypervisor=hypervisor), nics=[nic],
                 softirq=Softirq(nics=[NicSteering(nic.name, 1, 1, rps_cpus={"rx-0": rps})]),
                 path=Path(routes=[Route("ipv4", dev=default_dev, gateway="10.0.0.1")]))


def virtio(name="eth0") -> Nic:
    return Nic(name=name, kind="paravirtual", driver="virtio_net", operstate="up", mac="52:54:00:12:34:56",
               channels=Channels(max_combined=1, combined=1))


def by_id(f: Facts) -> dict:
    return {x.id: x for x in queues.run(*with_recorded(f))}


def test_firecracker_fix_is_tune_rps_and_the_plain_write_is_a_hint():
    (f,) = by_id(facts(virtio(), hypervisor="firecracker")).values()
    assert f.fix == "guestcheck tune rps eth0" and f.fix_on == "guest"  # journaled, persisted, rolled back
    assert f.hint.startswith("without guestcheck's tuner: echo f > /sys/class/net/eth0/queues/rx-0/rps_cpus ")
    assert f.to_dict()["hint"] == f.hint
    assert "libvirt" not in f.fix and "QEMU" not in f.fix and "queues=" not in f.fix and "MASK" not in f.fix
    (odd,) = by_id(facts(virtio("a b"), hypervisor="firecracker", default_dev="a b")).values()
    assert odd.fix == "guestcheck tune rps 'a b' --no-persist"  # no file can be named after it


def test_rps_over_every_vcpu_clears_it_on_firecracker():
    assert by_id(facts(virtio(), hypervisor="firecracker", rps="f")) == {}
    assert by_id(facts(virtio(), vcpus=40, hypervisor="firecracker", rps="ff,ffffffff")) == {}
    # RPS over some vCPUs only is not the fix
    assert "QUEUES-SINGLE-VIRTIO" in by_id(facts(virtio(), hypervisor="firecracker", rps="3"))


def test_a_host_that_can_add_queues_gets_labelled_lines_with_numbers():
    f = by_id(facts(virtio(), vcpus=4))["QUEUES-SINGLE-VIRTIO"]
    assert f.fix_on == "host"
    labels = [line.split(":", 1)[0] for line in f.fix.splitlines()]
    assert labels == ["on the host", "libvirt", "QEMU", "Proxmox", "guest, until then"]
    assert "queues='4'" in f.fix and "vectors=10" in f.fix and "queues=4" in f.fix
    assert f.fix.splitlines()[-1] == "guest, until then: guestcheck tune rps eth0"
    assert "echo f > /sys/class/net/eth0/queues/rx-0/rps_cpus" in f.hint
    with_rps = by_id(facts(virtio(), vcpus=4, rps="f"))["QUEUES-SINGLE-VIRTIO"]
    assert "guest, until then" not in with_rps.fix and "RPS spreads it" in with_rps.summary and not with_rps.hint


def test_more_combined_channels():
    n = virtio("a'b")
    n.channels = Channels(max_combined=8, combined=2)
    f = by_id(facts(n, vcpus=4))["QUEUES-FEWER-THAN-VCPUS"]
    assert f.fix == "ethtool -L 'a'\"'\"'b' combined 4"
    n.channels = Channels(max_combined=8, combined=4)
    assert by_id(facts(n, vcpus=4)) == {}


def veth(name="eth0", features=GRO_ON) -> Nic:
    return Nic(name=name, kind="software", software_type="veth", operstate="up", features=dict(features),
               channels=Channels(max_rx=4, max_tx=4, rx=1, tx=1))


def test_a_veth_uplink_in_napi_mode_gets_separate_rx_and_tx_channels():
    f = by_id(facts(veth(), vcpus=2))["QUEUES-FEWER-THAN-VCPUS"]
    assert f.fix == "ethtool -L eth0 rx 2 tx 2"
    done = veth()
    done.channels = Channels(max_rx=4, max_tx=4, rx=2, tx=2)
    assert by_id(facts(done, vcpus=2)) == {}


def test_veths_that_are_not_the_uplink_or_not_in_napi_mode_are_not_judged():
    assert by_id(facts(veth(), vcpus=2, default_dev="eth9")) == {}
    assert by_id(facts(veth(features={}), vcpus=2)) == {}


def test_the_host_fix_names_only_what_the_platform_can_have():
    """A cloud VM is never told to edit libvirt XML; a KVM guest whose ACPI root could not read may be a
    microVM (Firecracker, Cloud Hypervisor) or QEMU."""
    cloud = facts(virtio(), vcpus=4)
    cloud.virt.hypervisor, cloud.virt.cloud = "kvm", "google"
    fix = by_id(cloud)["QUEUES-SINGLE-VIRTIO"].fix
    assert [line.split(":", 1)[0] for line in fix.splitlines()] == ["on the host", "provider", "guest, until then"]
    assert "libvirt" not in fix and "Proxmox" not in fix and "4 or more queues" in fix
    micro = facts(virtio(), vcpus=2)
    micro.virt.hypervisor, micro.virt.caveats = "kvm", [FIRECRACKER_CAVEAT]
    labels = [line.split(":", 1)[0] for line in by_id(micro)["QUEUES-SINGLE-VIRTIO"].fix.splitlines()]
    assert labels == ["on the host", "Firecracker", "Cloud Hypervisor", "QEMU", "guest, until then"]
    assert "N" not in by_id(micro)["QUEUES-SINGLE-VIRTIO"].fix.replace("NIC", "").split()
