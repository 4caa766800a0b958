"""SoftIRQ health: per-CPU receive work, drops and squeezes over the sample, and how NIC work is steered.

Everything rate-like comes from the one CounterSample collect_facts takes: /proc/net/softnet_stat (drops,
time_squeeze), /proc/softirqs (NET_RX) and /proc/interrupts (the NIC queues' interrupts). The rest is
configuration read once: RPS/XPS masks in sysfs, IRQ affinity in /proc/irq, sysctls, irqbalance.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from guestcheck.collect.area import Run
from guestcheck.collect.counters import CounterSample, counter_delta
from guestcheck.collect.fs import cat, cat_int, listdir
from guestcheck.facts import Nic, NicIrq, NicSteering, Softirq, SoftnetCpu
from guestcheck.quantities import is_digits, maybe_int, parse_int
from guestcheck.roots import Roots

# softnet_stat grew a CPU id column (the 13th) in Linux 5.10; before that its rows are the online CPUs
# in ascending order, so a row's CPU must be worked out from the online set of the same moment.
CPU_COLUMN = 12
PCI_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", re.IGNORECASE)
# Interrupts of a NIC that carry no packets: configuration, management, events.
NOT_A_QUEUE = re.compile(r"config|mgmn?t|async|ctrl|cmd|mbo?x|admin|event", re.IGNORECASE)

FLOW_LIMIT_COLUMN = 9  # flow_limit_count (since Linux 3.11; 0 on older kernels, which have no such column)
SoftnetRow = Tuple[int, int, int, int]  # processed, dropped, time_squeeze, flow_limit_count


def online_cpus_from_stat(proc_stat: Optional[str]) -> Optional[List[int]]:
    """The CPUs /proc/stat lists (the online ones), or None without a reading."""
    if not proc_stat:
        return None
    cpus = [parse_int(m.group(1)) for m in re.finditer(r"^cpu([0-9]{1,6})\s", proc_stat, re.MULTILINE)]
    return cpus or None


def parse_softnet(text: Optional[str], online: Optional[List[int]]) -> Tuple[Dict[int, SoftnetRow], str]:
    """CPU id -> (processed, dropped, squeezed, flow limit), and how rows were mapped to CPUs."""
    if not text:
        return {}, ""
    rows = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 3:
            continue
        try:
            rows.append([parse_int(c, base=16) for c in cols])
        except ValueError:
            continue
    counts = [(r[0], r[1], r[2], r[FLOW_LIMIT_COLUMN] if len(r) > FLOW_LIMIT_COLUMN else 0) for r in rows]
    if rows and all(len(r) > CPU_COLUMN for r in rows):
        return {r[CPU_COLUMN]: c for r, c in zip(rows, counts)}, "cpu-column"
    cpus = online if online is not None and len(online) == len(rows) else list(range(len(rows)))
    return dict(zip(cpus, counts)), "online-order"


def _cpu_table(text: Optional[str]) -> Tuple[List[int], List[str]]:
    """The CPU ids of a "CPU0 CPU1 ..." header line, and the lines below it."""
    lines = (text or "").splitlines()
    if not lines:
        return [], []
    return [parse_int(h[3:]) for h in lines[0].split() if h.startswith("CPU") and is_digits(h[3:])
            and len(h) < 10], lines[1:]


def parse_softirqs(text: Optional[str], kind: str = "NET_RX") -> Dict[int, int]:
    """CPU id -> count of one softirq kind from /proc/softirqs (columns are the possible CPUs)."""
    cpus, lines = _cpu_table(text)
    for line in lines:
        label, _, rest = line.partition(":")
        if label.strip() == kind:
            values = rest.split()
            counts = {cpu: maybe_int(v) for cpu, v in zip(cpus, values)}
            return {cpu: n for cpu, n in counts.items() if n is not None}
    return {}


class InterruptLine:
    """One numbered line of /proc/interrupts."""

    def __init__(self, irq: str, counts: Dict[int, int], names: List[str], text: str) -> None:
        self.irq = irq
        self.counts = counts  # CPU id -> count (the online CPUs when read)
        self.names = names  # action names: "virtio0-input.0", "eth0-TxRx-0"
        self.text = text  # everything after the counts: chip, hwirq, names


def parse_interrupts(text: Optional[str]) -> Dict[str, InterruptLine]:
    """IRQ number -> its line; columns are the CPUs online when it was read."""
    cpus, lines = _cpu_table(text)
    out: Dict[str, InterruptLine] = {}
    for line in lines:
        label, sep, rest = line.partition(":")
        irq = label.strip()
        if not sep or maybe_int(irq) is None:
            continue  # NMI, LOC, ERR...: not a device's line
        tokens = rest.split()
        counts = {}
        for cpu, tok in zip(cpus, tokens):
            count = maybe_int(tok)
            if count is None:
                break
            counts[cpu] = count
        desc = tokens[len(counts):]
        named = desc[2:] if len(desc) >= 3 else desc[-1:]
        names = [n.strip() for n in " ".join(named).split(",") if n.strip()]
        out[irq] = InterruptLine(irq, counts, names, " ".join(desc))
    return out


def _per_cpu_delta(before: Dict[int, int], after: Dict[int, int]) -> Dict[int, int]:
    """Deltas for CPUs present in both readings; the kernel's per-CPU counters are 32-bit."""
    return {cpu: counter_delta(before[cpu], after[cpu]) for cpu in after if cpu in before}


def softnet_cpus(sample: CounterSample, notes: List[str]) -> Tuple[List[SoftnetCpu], List[int], List[int], str]:
    secs = sample.seconds
    b_online = online_cpus_from_stat(sample.before.proc_stat)
    a_online = online_cpus_from_stat(sample.after.proc_stat)
    before, mapping = parse_softnet(sample.before.softnet_stat, b_online)
    after, mapping_after = parse_softnet(sample.after.softnet_stat, a_online)
    mapping = mapping_after or mapping
    if mapping == "online-order":
        for which, rows, online in (("first", before, b_online), ("second", after, a_online)):
            if online is None or len(online) != len(rows):
                notes.append(f"softnet_stat rows of the {which} reading could not be matched to online CPUs")
    rx_before = parse_softirqs(sample.before.softirqs)
    rx_after = parse_softirqs(sample.after.softirqs)
    rx_delta = _per_cpu_delta(rx_before, rx_after)
    cpus = []
    for cpu in sorted(set(before) & set(after)):
        (p0, d0, s0, f0), (p1, d1, s1, f1) = before[cpu], after[cpu]
        dp, dd, ds = counter_delta(p0, p1), counter_delta(d0, d1), counter_delta(s0, s1)
        net_rx = rx_delta.get(cpu)
        cpus.append(SoftnetCpu(
            cpu=cpu,
            processed_per_s=round(dp / secs, 1),
            dropped_per_s=round(dd / secs, 1),
            squeezed_per_s=round(ds / secs, 1),
            dropped=dd,
            squeezed=ds,
            dropped_since_boot=d1,
            squeezed_since_boot=s1,
            net_rx_per_s=None if net_rx is None else round(net_rx / secs, 1),
            flow_limit=counter_delta(f0, f1),
            flow_limit_since_boot=f1,
        ))
    went = sorted(set(before) - set(after))
    came = sorted(set(after) - set(before))
    return cpus, went, came, mapping


def _device_ids(roots: Roots, nic: Nic) -> Tuple[Optional[str], Optional[str]]:
    """The NIC's virtio device name (virtio0) and PCI address, from the sysfs device link."""
    try:
        dev = os.path.realpath(os.path.join(roots.sys, "class/net", nic.name, "device"))
    except OSError:
        return None, None
    if not os.path.exists(dev):
        return None, None
    base = os.path.basename(dev)
    virtio = base if re.fullmatch(r"virtio[0-9]+", base) else None
    pci = None
    for candidate in (base, os.path.basename(os.path.dirname(dev)), nic.bus_info or ""):
        if PCI_ADDRESS.fullmatch(candidate):
            pci = candidate.lower()
            break
    return virtio, pci


def is_nic_queue_irq(line: InterruptLine, ifname: str, virtio: Optional[str], pci: Optional[str]) -> bool:
    for name in line.names:
        if NOT_A_QUEUE.search(name):
            continue
        if name == ifname or name.startswith((f"{ifname}-", f"{ifname}@", f"{ifname}_")):
            return True
        if virtio and (name == virtio or name.startswith(f"{virtio}-")):
            return True
        if pci and pci in name.lower():
            return True
    if pci and pci in line.text.lower():  # newer kernels name the MSI-X chip after the PCI function
        return bool(line.names) and not any(NOT_A_QUEUE.search(n) for n in line.names)
    return False


def _irq_rate(irq: str, before: Dict[str, InterruptLine], after: Dict[str, InterruptLine],
              seconds: float) -> Optional[float]:
    if irq not in before or irq not in after:
        return None
    delta = _per_cpu_delta(before[irq].counts, after[irq].counts)
    return round(sum(delta.values()) / seconds, 1) if delta else None


def _masks(roots: Roots, ifname: str, prefix: str, attr: str) -> Dict[str, str]:
    qdir = os.path.join(roots.sys, "class/net", ifname, "queues")
    out = {}
    for q in listdir(qdir):
        if q.startswith(prefix):
            mask = cat(os.path.join(qdir, q, attr))
            if mask is not None:
                out[q] = mask
    return out


def nic_steering(roots: Roots, nics: List[Nic], sample: CounterSample) -> List[NicSteering]:
    before = parse_interrupts(sample.before.interrupts)
    after = parse_interrupts(sample.after.interrupts)
    out = []
    for nic in nics:
        if nic.software_type == "loopback" or nic.link_type == 772:
            continue
        qdir = os.path.join(roots.sys, "class/net", nic.name, "queues")
        queues = listdir(qdir)
        virtio, pci = _device_ids(roots, nic)
        irqs = []
        for irq, line in sorted(after.items(), key=lambda kv: parse_int(kv[0])):  # parse_interrupts kept numbers only
            if is_nic_queue_irq(line, nic.name, virtio, pci):
                base = os.path.join(roots.proc, "irq", irq)
                irqs.append(NicIrq(
                    irq=irq,
                    name=", ".join(line.names),
                    per_s=_irq_rate(irq, before, after, sample.seconds),
                    affinity=cat(os.path.join(base, "smp_affinity_list")),
                    effective=cat(os.path.join(base, "effective_affinity_list")),
                ))
        out.append(NicSteering(
            nic=nic.name,
            rx_queues=sum(q.startswith("rx-") for q in queues),
            tx_queues=sum(q.startswith("tx-") for q in queues),
            rps_cpus=_masks(roots, nic.name, "rx-", "rps_cpus"),
            xps_cpus=_masks(roots, nic.name, "tx-", "xps_cpus"),
            irqs=irqs,
        ))
    return out


def irqbalance_running(roots: Roots) -> Optional[bool]:
    """A process named irqbalance in /proc; None when /proc lists no processes at all."""
    from guestcheck.collect.processes import running

    found = running(roots.proc, ["irqbalance"])
    return None if found is None else "irqbalance" in found


def collect_softirq(roots: Roots, nics: List[Nic], sample: CounterSample) -> Softirq:
    notes: List[str] = []
    if sample.after.softnet_stat is None:
        notes.append(f"{roots.proc}/net/softnet_stat is not readable")
    cpus, went, came, mapping = softnet_cpus(sample, notes)
    core = os.path.join(roots.proc, "sys/net/core")
    return Softirq(
        cpus=cpus,
        cpus_went_offline=went,
        cpus_came_online=came,
        row_mapping=mapping,
        nics=nic_steering(roots, nics, sample),
        irqbalance=irqbalance_running(roots),
        netdev_budget=cat_int(os.path.join(core, "netdev_budget")),
        netdev_budget_usecs=cat_int(os.path.join(core, "netdev_budget_usecs")),
        netdev_max_backlog=cat_int(os.path.join(core, "netdev_max_backlog")),
        notes=notes,
    )


AREA = "softirq"
SAMPLED = True


def collect(run: Run) -> Softirq:
    return collect_softirq(run.roots, run.facts.nics, run.counters)
