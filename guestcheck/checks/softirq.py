"""SoftIRQ health: receive work that is dropped, cut short, or piled onto one vCPU, and how to spread it."""

from __future__ import annotations

import re
from typing import List, Set

from guestcheck.checks import CARRYING_TRAFFIC, FindingDoc, carries_traffic, traffic_nics, uplink_veths
from guestcheck.checks.fixes import net_queue_attr, rps_fix, rps_hint, sysctl_lines, sysfs_write
from guestcheck.cpus import cpu_bitmap, cpu_list, first_cpus_mask, mask_is_zero
from guestcheck.distros import enable_service_command, install_command
from guestcheck.facts import Facts, NicSteering, Softirq
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.quantities import is_digits, parse_int

HARDWARE = {"paravirtual", "sriov-vf", "emulated", "physical"}
MIN_NET_RX_PER_S = 1000.0  # below this the machine is idle and shares mean nothing
IMBALANCE_SHARE = 0.8  # one CPU doing this much of all NET_RX work on a multi-vCPU machine
SQUEEZE_PER_S = 1.0

# The shipped profile that raises net.core.netdev_max_backlog (profiles/many-connections.conf; a test holds it
# to that). No profile raises netdev_budget, so SOFTIRQ-SQUEEZE names none.
BACKLOG_PROFILE = "many-connections"
RPS_HOW = ("spread receive work over more CPUs: RPS on single-queue NICs (guestcheck tune rps IFACE, see "
           "SOFTIRQ-NO-RPS), or more NIC queues")

PERSIST = "to keep it: a file in /etc/sysctl.d/ with the same setting (or `guestcheck tune`)"

FINDINGS = {
    "SOFTIRQ-DROPS": FindingDoc(
        "Packets dropped because a CPU's backlog was full",
        "warning",
        "/proc/net/softnet_stat column 2 counts packets thrown away because the per-CPU input backlog "
        "(net.core.netdev_max_backlog) was full: the CPU could not keep up with RPS, veth, tun or non-NAPI "
        "traffic. Each drop costs a TCP retransmit. Drops seen only in the counters since boot (not in the "
        "sample) are reported as info.",
        "sysctl -w net.core.netdev_max_backlog=4096 (double it again if drops go on); spread receive work "
        "with RPS so no single CPU's backlog fills (see SOFTIRQ-NO-RPS); " + PERSIST + ": `guestcheck tune "
        "apply " + BACKLOG_PROFILE + "` raises net.core.netdev_max_backlog to 16384 and keeps it",
    ),
    "SOFTIRQ-SQUEEZE": FindingDoc(
        "The receive softirq runs out of budget",
        "warning",
        "/proc/net/softnet_stat column 3 (time_squeeze) counts how often net_rx_action stopped with packets "
        "still waiting because it used up net.core.netdev_budget packets or netdev_budget_usecs. The rest waits "
        "for ksoftirqd, which competes with normal tasks: latency and drops under load.",
        "sysctl -w net.core.netdev_budget=600 net.core.netdev_budget_usecs=8000 (about twice the defaults); "
        + PERSIST,
    ),
    "SOFTIRQ-IMBALANCE": FindingDoc(
        "One vCPU does most of the receive work",
        "warning",
        "Over the sample one CPU handled most NET_RX softirqs (/proc/softirqs) while others idled: receive "
        "throughput is capped by that one vCPU. Usually a single-queue NIC without RPS, or all queue "
        "interrupts on one CPU.",
        "Spread it: more NIC queues (ethtool -L IFACE combined N, or virtio multiqueue on the host); RPS on a "
        "single queue (guestcheck tune rps IFACE); queue interrupts on different "
        "CPUs (irqbalance, or /proc/irq/N/smp_affinity_list).",
        fix_on="",  # which of the ways fits is the admin's call: advice in the hint
    ),
    "SOFTIRQ-NO-RPS": FindingDoc(
        "A single-queue NIC on several vCPUs without RPS",
        "info",
        "The NIC has one receive queue, so one vCPU takes its interrupt and, without Receive Packet Steering, "
        "all of its protocol processing too. RPS hands packets to other CPUs by flow hash (RFS: to the CPU "
        "where the reading application runs). A warning when the sample showed receive load piling up; info "
        "on an idle machine, where it only matters once traffic comes.",
        "guestcheck tune rps IFACE [--cpus LIST]: RPS over every online CPU (or LIST) on each receive queue, "
        "journaled, kept by a udev rule (/etc/udev/rules.d/90-guestcheck-IFACE.rules) and undone by `guestcheck "
        "tune rollback`. Without guestcheck's tuner: echo MASK > /sys/class/net/IFACE/queues/rx-0/rps_cpus "
        "(MASK = the CPUs to use, hex, e.g. f for 0-3; until the next boot). For RFS as well (flows steered to "
        "the CPU of the reading application): sysctl -w net.core.rps_sock_flow_entries=32768 and echo 32768 > "
        "/sys/class/net/IFACE/queues/rx-0/rps_flow_cnt. Judged on hardware and paravirtual NICs, and on a veth "
        "that carries the default route (a container's uplink).",
        judged_on=CARRYING_TRAFFIC,
    ),
    "SOFTIRQ-NO-XPS": FindingDoc(
        "Transmit queues are not mapped to CPUs",
        "info",
        "The NIC has several transmit queues but no Transmit Packet Steering: the queue is picked by hash, so "
        "CPUs contend for each other's queue locks and completions land on other CPUs' caches.",
        "Map transmit queue i to CPU i: echo $((1 << i)) as hex > /sys/class/net/IFACE/queues/tx-i/xps_cpus "
        "(virtio-net does this itself when it has one queue pair per vCPU).",
        judged_on=CARRYING_TRAFFIC,
    ),
    "IRQ-AFFINITY-ONE-CPU": FindingDoc(
        "All of a multi-queue NIC's interrupts go to one CPU",
        "warning",
        "The NIC has several queues, but /proc/irq/N/(effective_)affinity puts every queue interrupt on the "
        "same CPU, so that CPU takes all receive work and the other queues buy nothing.",
        "Spread them, one queue per CPU: echo CPU > /proc/irq/N/smp_affinity_list for each queue interrupt; "
        "or run irqbalance (apt install irqbalance; systemctl enable --now irqbalance).",
        judged_on=CARRYING_TRAFFIC,
    ),
    "IRQBALANCE-MISSING": FindingDoc(
        "irqbalance is not running and NIC interrupts sit on one CPU",
        "info",
        "Nothing moves interrupts between vCPUs: every NIC queue interrupt lands on the same CPU, which also "
        "serves the rest of the machine's interrupts. irqbalance spreads them by load (virtio-net multiqueue "
        "pins its own queues, so it matters most for single-queue and emulated NICs).",
        "apt install irqbalance && systemctl enable --now irqbalance, or pin by hand: "
        "echo CPU > /proc/irq/N/smp_affinity_list",
    ),
}


def queue_index(name: str, fallback: int) -> int:
    """The queue number an interrupt name ends with (virtio0-input.3, eth0-TxRx-3), so rx and tx pair up."""
    match = re.search(r"([0-9]{1,9})$", name)
    return parse_int(match.group(1)) if match else fallback


def irq_cpus(steering: NicSteering) -> Set[int]:
    """The CPUs a NIC's queue interrupts run on: effective affinity where the kernel shows it."""
    cpus: Set[int] = set()
    for irq in steering.irqs:
        cpus |= cpu_list(irq.effective) or cpu_list(irq.affinity)
    return cpus


def _cpu_findings(s: Softirq, vcpus: int) -> List[Finding]:
    out = []
    dropping = [c for c in s.cpus if c.dropped]
    if dropping:
        backlog = s.netdev_max_backlog or 1000
        out.append(Finding(
            "SOFTIRQ-DROPS", Severity.WARNING, ",".join(f"cpu{c.cpu}" for c in dropping),
            "backlog full: " + ", ".join(f"cpu{c.cpu} dropped {c.dropped_per_s:g}/s" for c in dropping),
            {"dropped_per_s": {f"cpu{c.cpu}": c.dropped_per_s for c in dropping},
             "netdev_max_backlog": s.netdev_max_backlog, "rps": RPS_HOW,
             "or": f"guestcheck tune apply {BACKLOG_PROFILE}  (raises net.core.netdev_max_backlog, persisted)"},
            "\n".join(sysctl_lines({"net.core.netdev_max_backlog": max(4096, backlog * 2)}, "backlog"))))
    else:
        old = [c for c in s.cpus if c.dropped_since_boot]
        if old:
            out.append(Finding(
                "SOFTIRQ-DROPS", Severity.INFO, ",".join(f"cpu{c.cpu}" for c in old),
                "backlog drops since boot, none during the sample: "
                + ", ".join(f"cpu{c.cpu} {c.dropped_since_boot}" for c in old),
                {"dropped_since_boot": {f"cpu{c.cpu}": c.dropped_since_boot for c in old},
                 "netdev_max_backlog": s.netdev_max_backlog},
                hint="Sample under load (guestcheck doctor --sample 10) to see whether it still happens."))
    squeezing = [c for c in s.cpus if c.squeezed_per_s >= SQUEEZE_PER_S]
    if squeezing:
        budget, usecs = s.netdev_budget or 300, s.netdev_budget_usecs or 2000
        out.append(Finding(
            "SOFTIRQ-SQUEEZE", Severity.WARNING, ",".join(f"cpu{c.cpu}" for c in squeezing),
            "receive softirq out of budget: " + ", ".join(f"cpu{c.cpu} {c.squeezed_per_s:g}/s" for c in squeezing),
            {"squeezed_per_s": {f"cpu{c.cpu}": c.squeezed_per_s for c in squeezing},
             "netdev_budget": s.netdev_budget, "netdev_budget_usecs": s.netdev_budget_usecs},
            "\n".join(sysctl_lines({"net.core.netdev_budget": budget * 2, "net.core.netdev_budget_usecs": usecs * 2},
                                   "budget"))))
    rates = {c.cpu: c.net_rx_per_s for c in s.cpus if c.net_rx_per_s is not None}
    total = sum(rates.values())
    if vcpus > 1 and len(rates) > 1 and total >= MIN_NET_RX_PER_S:
        busiest = max(rates, key=lambda k: rates[k])
        share = rates[busiest] / total
        if share >= IMBALANCE_SHARE:
            out.append(Finding(
                "SOFTIRQ-IMBALANCE", Severity.WARNING, f"cpu{busiest}",
                f"cpu{busiest} handled {share:.0%} of {total:.0f} NET_RX softirqs/s across {len(rates)} CPUs",
                {"net_rx_per_s": {f"cpu{k}": v for k, v in rates.items()}, "share": round(share, 3)},
                hint=FINDINGS["SOFTIRQ-IMBALANCE"].fix))
    return out


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [
    ("SOFTIRQ-DROPS", ("sysctl:net.core.netdev_max_backlog", "rps")),
    ("SOFTIRQ-SQUEEZE", ("sysctl:net.core.netdev_budget", "sysctl:net.core.netdev_budget_usecs")),
    ("SOFTIRQ-IMBALANCE", ("irq", "rps")),
    ("SOFTIRQ-NO-RPS", ("rps",)),
    ("SOFTIRQ-NO-XPS", ("xps",)),
    ("IRQ*", ("irq",)),
]


def run(facts: Facts, judged: Judged) -> list[Finding]:
    s = facts.softirq
    if s is None:
        return []
    vcpus = facts.host.vcpus
    out = _cpu_findings(s, vcpus)
    under_load = any(f.severity >= Severity.WARNING for f in out)
    steering = {n.nic: n for n in s.nics}
    spread_cpus: Set[int] = set()
    nics_with_irqs = []
    for nic in traffic_nics(facts, judged, HARDWARE) + [n for n in uplink_veths(facts, judged) if carries_traffic(n)]:
        st = steering.get(nic.name)
        if st is None or vcpus < 2:
            continue
        mask = first_cpus_mask(vcpus)
        rps = st.rps_cpus.get("rx-0")
        if st.rx_queues == 1 and rps is not None and mask_is_zero(rps):
            out.append(Finding(
                "SOFTIRQ-NO-RPS", Severity.WARNING if under_load else Severity.INFO, nic.name,
                f"one receive queue, {vcpus} vCPUs, RPS off"
                + ("" if under_load else " (idle during the sample)"),
                {"rx_queues": st.rx_queues, "rps_cpus": st.rps_cpus, "vcpus": vcpus},
                rps_fix(nic.name), hint=rps_hint(nic.name, mask)))
        if st.tx_queues > 1 and st.xps_cpus and all(mask_is_zero(m) for m in st.xps_cpus.values()):
            out.append(Finding(
                "SOFTIRQ-NO-XPS", Severity.INFO, nic.name,
                f"{st.tx_queues} transmit queues, none mapped to a CPU",
                {"xps_cpus": st.xps_cpus, "vcpus": vcpus},
                "\n".join(sysfs_write(cpu_bitmap([i % vcpus]), net_queue_attr(nic.name, f"tx-{i}", "xps_cpus"))
                          for i in range(st.tx_queues))))
        cpus = irq_cpus(st)
        if st.irqs:
            nics_with_irqs.append(nic.name)
            spread_cpus |= cpus
        if len(st.irqs) >= 2 and max(st.rx_queues, st.tx_queues) >= 2 and len(cpus) == 1:
            cpu = next(iter(cpus))
            out.append(Finding(
                "IRQ-AFFINITY-ONE-CPU", Severity.WARNING, nic.name,
                f"all {len(st.irqs)} queue interrupts run on cpu{cpu}",
                {"irqs": {i.irq: {"name": i.name, "affinity": i.affinity, "effective": i.effective,
                                  "per_s": i.per_s} for i in st.irqs},
                 "or": "run irqbalance instead: systemctl enable --now irqbalance"},
                "\n".join(sysfs_write(str(queue_index(irq.name, n) % vcpus),
                                       f"/proc/irq/{irq.irq}/smp_affinity_list")
                          for n, irq in enumerate(st.irqs) if is_digits(irq.irq))))
    if s.irqbalance is False and vcpus > 1 and nics_with_irqs and len(spread_cpus) == 1:
        out.append(Finding(
            "IRQBALANCE-MISSING", Severity.INFO, ",".join(nics_with_irqs),
            f"irqbalance is not running; every NIC interrupt runs on cpu{next(iter(spread_cpus))}",
            {"irqbalance": False, "vcpus": vcpus, "nics": nics_with_irqs,
             "or": "pin by hand: echo CPU > /proc/irq/N/smp_affinity_list"},
            f"{install_command('irqbalance', facts.host.os_id, facts.host.os_like)}\n"
            f"{enable_service_command('irqbalance', facts.host.os_id, facts.host.os_like)}"))
    return out
