"""One queue pair means one vCPU handles all of a NIC's interrupts and softirq work."""

from __future__ import annotations

from typing import Optional

from guestcheck.checks import CARRYING_TRAFFIC, PRESENT, FindingDoc, carries_traffic, present_nics, uplink_veths
from guestcheck.checks.fixes import rps_fix, rps_hint
from guestcheck.cpus import first_cpus_mask, mask_cpus
from guestcheck.facts import Channels, Facts, Feature, Nic
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.judge.virt import host_tools
from guestcheck.text import shell_word

# Hypervisors whose virtio-net has one queue pair, with no setting to add more: RPS is the whole fix there.
NO_VIRTIO_MULTIQUEUE = {"firecracker"}


# One labelled line per host tool, every number filled in; only the tools the platform can have are printed
# (guestcheck.judge.virt.host_tools), so a cloud VM is never told to edit libvirt XML.
HOST_MQ_LINES = {
    "libvirt": lambda n: f"libvirt: <interface ...><model type='virtio'/><driver name='vhost' queues='{n}'/>"
                         "</interface>",
    "qemu": lambda n: f"QEMU: -netdev tap,id=n0,vhost=on,queues={n} -device virtio-net-pci,netdev=n0,mq=on,"
                      f"vectors={2 * n + 2}",
    "proxmox": lambda n: f"Proxmox: qm set VMID --net0 virtio,bridge=vmbr0,queues={n}",
    "cloud-hypervisor": lambda n: f"Cloud Hypervisor: --net tap=TAP,num_queues={2 * n} (rx and tx queues together)",
    "firecracker": lambda n: "Firecracker: has no virtio multiqueue; RPS in the guest is the whole fix there",
    "provider": lambda n: "provider: the queue count comes with the instance type or NIC type; choose one with "
                          f"{n} or more queues (or the provider's faster NIC: ENA, gVNIC, accelerated networking)",
}
DEFAULT_HOST_TOOLS = ("libvirt", "qemu", "proxmox")  # a virtio NIC with no platform verdict: some KVM host


def host_mq_fix(vcpus: int, ifname: str, rps: bool, tools: tuple[str, ...] = DEFAULT_HOST_TOOLS) -> str:
    """The host's settings for `vcpus` queue pairs, one labelled line per tool the platform can have."""
    known = [t for t in tools if t in HOST_MQ_LINES] or list(DEFAULT_HOST_TOOLS)
    lines = [f"on the host: give the NIC {vcpus} queue pairs (one per vCPU), then restart the VM"]
    lines += [HOST_MQ_LINES[t](vcpus) for t in known]
    if rps:
        lines.append("guest, until then: " + rps_fix(ifname))
    return "\n".join(lines)


FINDINGS = {
    "QUEUES-FEWER-THAN-VCPUS": FindingDoc(
        "The NIC uses fewer queues than it could",
        "warning",
        "The NIC offers more channels than are enabled, and there are vCPUs to serve them: more queues spread "
        "interrupts and softirq work across vCPUs. Judged on hardware and paravirtual NICs, and on a veth that "
        "carries the default route (a container's uplink).",
        "ethtool -L IFACE combined N  (or rx N tx N where the NIC has separate channels, as veth does), with "
        "N = min(vCPUs, the maximum `ethtool -l IFACE` shows)",
        judged_on=CARRYING_TRAFFIC,
    ),
    "QUEUES-SINGLE-VIRTIO": FindingDoc(
        "A single-queue virtio NIC on a multi-vCPU guest",
        "warning",
        "The host gave this virtio-net device one queue pair, so one vCPU takes all of its interrupts; "
        "the guest cannot add queues, the host must (virtio multiqueue). Where the host cannot offer more "
        "(Firecracker), Receive Packet Steering over every vCPU is the fix, and the finding clears once RPS "
        "covers them all.",
        "On the host, N = the number of vCPUs: libvirt <driver name='vhost' queues='N'/> in the interface; "
        "QEMU -netdev tap,...,queues=N -device virtio-net-pci,...,mq=on,vectors=2N+2; Proxmox qm set VMID "
        "--net0 virtio,...,queues=N. In the guest, until then (and on Firecracker, instead): "
        "guestcheck tune rps IFACE (RPS over every online CPU, journaled, kept by a udev rule, undone by "
        "`guestcheck tune rollback`); without guestcheck's tuner: echo MASK > "
        "/sys/class/net/IFACE/queues/rx-0/rps_cpus with MASK covering every vCPU, until the next boot.",
        judged_on=PRESENT,
        fix_on="host",
        guest_fix_too=True,  # on Firecracker, which has no multiqueue, the fix is RPS in the guest
    ),
}

HARDWARE = {"paravirtual", "sriov-vf", "emulated", "physical"}


def rps_covers(facts: Facts, nic: Nic, vcpus: int) -> bool:
    """RPS on the NIC's receive queue already spreads work over every vCPU."""
    steering = next((s for s in (facts.softirq.nics if facts.softirq else []) if s.nic == nic.name), None)
    if steering is None:
        return False
    return set(range(vcpus)) <= mask_cpus(steering.rps_cpus.get("rx-0"))


def _more_channels(ch: Channels, vcpus: int, name: str) -> Optional[tuple[str, str]]:
    """(summary, fix) when the NIC could use more channels: combined ones, or separate rx/tx (veth)."""
    q = shell_word(name)
    if ch.max_combined:
        want = min(vcpus, ch.max_combined)
        if ch.combined < want:
            return (f"{ch.combined} combined channel(s) in use, {want} possible with {vcpus} vCPUs",
                    f"ethtool -L {q} combined {want}")
        return None
    if ch.max_rx and ch.max_tx:
        want_rx, want_tx = min(vcpus, ch.max_rx), min(vcpus, ch.max_tx)
        if ch.rx < want_rx or ch.tx < want_tx:
            return (f"{ch.rx} rx / {ch.tx} tx channel(s) in use, {want_rx} / {want_tx} possible with {vcpus} vCPUs",
                    f"ethtool -L {q} rx {want_rx} tx {want_tx}")
    return None


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [("QUEUES-*", ("channels",))]


def run(facts: Facts, judged: Judged) -> list[Finding]:
    out = []
    vcpus = facts.host.vcpus
    for nic in present_nics(facts, judged, HARDWARE) + uplink_veths(facts, judged):
        ch = nic.channels
        if ch is None:
            continue
        evidence = {"vcpus": vcpus, "combined": ch.combined, "max_combined": ch.max_combined,
                    "rx": ch.rx, "max_rx": ch.max_rx, "tx": ch.tx, "max_tx": ch.max_tx,
                    "rx_queues_sysfs": nic.rx_queues, "tx_queues_sysfs": nic.tx_queues}
        if judged.software_type(nic) == "veth" and not (nic.features or {}).get("rx-gro", Feature(False, True)).on:
            continue  # a veth's extra receive queues are used only in its NAPI mode (GRO or XDP on)
        more = _more_channels(ch, vcpus, nic.name)
        if more and carries_traffic(nic):
            out.append(Finding("QUEUES-FEWER-THAN-VCPUS", Severity.WARNING, nic.name, more[0], evidence, more[1],
                               "guest"))
        elif nic.driver == "virtio_net" and vcpus > 1 and ch.max_combined <= 1:
            out += _single_virtio(facts, judged, nic, vcpus, evidence)
    return out


def _single_virtio(facts: Facts, judged: Judged, nic: Nic, vcpus: int, evidence: dict) -> list[Finding]:
    covered = rps_covers(facts, nic, vcpus)
    hypervisor = judged.virt.hypervisor
    evidence = dict(evidence, rps_covers_vcpus=covered, hypervisor=hypervisor)
    if hypervisor in NO_VIRTIO_MULTIQUEUE:
        if covered:
            return []  # the whole fix there, and it is in place
        evidence["how"] = (f"{hypervisor}'s virtio-net has a single queue pair and no setting for "
                           "more; Receive Packet Steering spreads receive work over the vCPUs")
        return [Finding("QUEUES-SINGLE-VIRTIO", Severity.WARNING, nic.name,
                        f"virtio-net with one queue pair on {vcpus} vCPUs and RPS off",
                        evidence, rps_fix(nic.name), "guest", hint=rps_hint(nic.name, first_cpus_mask(vcpus)))]
    summary = f"virtio-net with one queue pair on {vcpus} vCPUs" + (" (RPS spreads it meanwhile)" if covered else "")
    return [Finding("QUEUES-SINGLE-VIRTIO", Severity.WARNING, nic.name, summary, evidence,
                    host_mq_fix(vcpus, nic.name, rps=not covered, tools=host_tools(judged.virt)), "host",
                    hint="" if covered else rps_hint(nic.name, first_cpus_mask(vcpus)))]
