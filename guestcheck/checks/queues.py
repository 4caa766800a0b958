"""One queue pair means one vCPU handles all of a NIC's interrupts and softirq work."""

from __future__ import annotations

from guestcheck.checks import CARRYING_TRAFFIC, PRESENT, FindingDoc, carries_traffic, present_nics, queue_file
from guestcheck.cpus import first_cpus_mask
from guestcheck.facts import Facts
from guestcheck.findings import Finding, Severity
from guestcheck.text import shell_word

HOST_MQ_FIX = (
    "Give the NIC N = (number of vCPUs) queue pairs on the host, then reboot the guest: "
    "libvirt: <interface ...><model type='virtio'/><driver name='vhost' queues='N'/></interface>; "
    "QEMU: -netdev tap,id=n0,vhost=on,queues=N -device virtio-net-pci,netdev=n0,mq=on,vectors=2N+2; "
    "Proxmox: qm set VMID --net0 virtio,bridge=vmbr0,queues=N. "
    "Until then, spread receive work in the guest with RPS: echo MASK > /sys/class/net/IFACE/queues/rx-0/rps_cpus."
)

FINDINGS = {
    "QUEUES-FEWER-THAN-VCPUS": FindingDoc(
        "The NIC uses fewer queues than it could",
        "warning",
        "The NIC offers more combined channels than are enabled, and there are vCPUs to serve them: "
        "more queues spread interrupts and softirq work across vCPUs.",
        "ethtool -L IFACE combined N  with N = min(vCPUs, the maximum `ethtool -l IFACE` shows)",
        judged_on=CARRYING_TRAFFIC,
    ),
    "QUEUES-SINGLE-VIRTIO": FindingDoc(
        "A single-queue virtio NIC on a multi-vCPU guest",
        "warning",
        "The host gave this virtio-net device one queue pair, so one vCPU takes all of its interrupts; "
        "the guest cannot add queues, the host must (virtio multiqueue).",
        HOST_MQ_FIX,
        judged_on=PRESENT,
    ),
}

HARDWARE = {"paravirtual", "sriov-vf", "emulated", "physical"}


def run(facts: Facts) -> list[Finding]:
    out = []
    vcpus = facts.host.vcpus
    for nic in present_nics(facts, HARDWARE):
        ch = nic.channels
        if ch is None:
            continue
        evidence = {"vcpus": vcpus, "combined": ch.combined, "max_combined": ch.max_combined,
                    "rx_queues_sysfs": nic.rx_queues, "tx_queues_sysfs": nic.tx_queues}
        want = min(vcpus, ch.max_combined)
        if ch.max_combined and ch.combined < want and carries_traffic(nic):
            out.append(Finding("QUEUES-FEWER-THAN-VCPUS", Severity.WARNING, nic.name,
                               f"{ch.combined} combined channel(s) in use, {want} possible with {vcpus} vCPUs",
                               evidence, f"ethtool -L {shell_word(nic.name)} combined {want}"))
        elif nic.driver == "virtio_net" and vcpus > 1 and ch.max_combined <= 1:
            fix = HOST_MQ_FIX.replace("N = (number of vCPUs)", f"N = {vcpus}")
            if facts.virt.hypervisor == "firecracker":
                fix = ("Firecracker's virtio-net has a single queue pair; spread receive work with RPS: "
                       f"echo {first_cpus_mask(vcpus)} > {queue_file(nic.name, 'rx-0/rps_cpus')}")
            out.append(Finding("QUEUES-SINGLE-VIRTIO", Severity.WARNING, nic.name,
                               f"virtio-net with one queue pair on {vcpus} vCPUs", evidence, fix))
    return out
