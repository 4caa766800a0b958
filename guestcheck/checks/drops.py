"""Drop and limit counters: the provider's shaping (ENA allowances), the driver's per-queue drops, and the
interface's own drop counters, each judged on its rise during the sample first and its total since boot second."""

from __future__ import annotations

from typing import Dict, List, Optional

from guestcheck.checks import PRESENT, FindingDoc, present_nics
from guestcheck.checks.fixes import sysctl_lines
from guestcheck.checks.rings import ring_can_grow, ring_overflow
from guestcheck.checks.softirq import queue_index
from guestcheck.cpus import mask_cpus
from guestcheck.drivercounters import ALLOWANCE_GAUGE, curated
from guestcheck.facts import CounterRate, Facts, Nic, NicCounters, NicSteering
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.text import shell_word

# One labelled line per remedy (fix_on "host": the instance type and the VPC are the provider's side).
ALLOWANCE_FIXES = {
    "bw_in": "AWS, bandwidth in: a larger instance type, or one with more network bandwidth (the n types)",
    "bw_out": "AWS, bandwidth out: a larger instance type, or one with more network bandwidth (the n types)",
    "pps": "AWS, packets per second: a larger instance type; fewer, larger packets (MTU 9001 inside the VPC)",
    "conntrack": "AWS, tracked connections: a larger instance type, or fewer tracked connections (security "
                 "group rules open to 0.0.0.0/0 both ways are not tracked; shorter idle timeouts with "
                 "aws ec2 modify-network-interface-attribute --connection-tracking-specification)",
    "linklocal": "AWS, link-local services: fewer packets to 169.254.169.253 (DNS), .123 (NTP) and the "
                 "metadata service: a local DNS cache (systemd-resolved), fewer metadata polls",
}
SPREAD_FIX = ("AWS, single flows: spread the traffic over more flows (one flow is capped at 5 Gbit/s, 10 in a "
              "cluster placement group) or enable ENA Express on both ends (25 Gbit/s per flow): "
              "aws ec2 modify-network-interface-attribute --network-interface-id ENI "
              "--ena-srd-specification EnaSrdEnabled=true")

FINDINGS = {
    "NIC-ALLOWANCE-EXCEEDED": FindingDoc(
        "The cloud provider shaped this instance's traffic",
        "critical",
        "AWS ENA counts, per interface, the packets the instance's own limits queued or dropped: "
        "bw_in_allowance_exceeded and bw_out_allowance_exceeded (the instance type's aggregate bandwidth), "
        "pps_allowance_exceeded (packets per second), conntrack_allowance_exceeded (the number of connections "
        "security groups can track; conntrack_allowance_available says how many are left) and "
        "linklocal_allowance_exceeded (packets per second to link-local services: DNS, NTP, metadata). "
        "The guest sees nothing else: no error, only retransmits and latency. Critical when a counter rose "
        "during the sample (the limit is reached now), a warning when it rose only since boot (it was reached "
        "before, and the load that reached it tends to come back). The counters need ENA 2.2.10 or later "
        "(conntrack_allowance_available 2.8.1). Source: amzn/amzn-drivers kernel/linux/ena "
        "ENA_Linux_Best_Practices.rst and ena_ethtool.c; AWS \"Monitor network performance for ENA\".",
        "On the provider's side: a larger instance type (more bandwidth, PPS and tracked connections); "
        "ENA Express for single flows; spread traffic over more flows; fewer tracked connections (untracked "
        "security group rules, shorter idle timeouts); fewer packets to link-local services.",
        judged_on=PRESENT,
        fix_on="host",
    ),
    "NIC-QUEUE-DROPS": FindingDoc(
        "A driver queue dropped or stopped",
        "warning",
        "Per-queue counters of the driver (`ethtool -S`): virtio-net's rx_queue_N_drops / rxN_drops (frames "
        "the driver dropped: no memory for a buffer, a malformed frame) and tx_queue_N_xdp_tx_drops (XDP "
        "transmits that found the queue full); ENA's queue_N_tx_queue_stop (the TX ring filled: the PPS or "
        "bandwidth allowance, vCPU starvation, or one queue carrying all flows); netvsc's device-wide "
        "rx_no_memory and tx_no_space (receive buffers or the send buffer ran out). The finding names the "
        "queue and the CPU that serves it (its interrupt's affinity, else its RPS/XPS mask), because the "
        "usual cause is that CPU: busy with other work, or taking every queue. A warning when they rose during "
        "the sample, info when only since boot.",
        "Look at the CPU the finding names (top, /proc/softirqs): move other work off it, spread the queues' "
        "interrupts (irqbalance, /proc/irq/N/smp_affinity_list), use more queues (ethtool -L IFACE combined N) "
        "or RPS. For ENA queue stops with an allowance counter rising, see NIC-ALLOWANCE-EXCEEDED. For "
        "rx_no_memory and virtio drops, check memory pressure (free -m, /proc/pressure/memory).",
        judged_on=PRESENT,
        fix_on="",  # the cause is a busy CPU or memory pressure: the evidence names them
    ),
    "NIC-DROPS": FindingDoc(
        "The interface dropped packets",
        "warning",
        "/sys/class/net/IFACE/statistics counts what the kernel and driver dropped: rx_dropped (the stack had "
        "no use for a frame: an unknown protocol or ethertype, a full per-CPU backlog; on some drivers no "
        "buffer), rx_missed_errors, rx_fifo_errors and rx_over_errors (the receive ring was full), rx_nohandler "
        "(no protocol took the frame on a bond's inactive port), tx_dropped and tx_errors (the driver could not "
        "send), with tx_aborted_errors and tx_carrier_errors saying why: an aborted send (on a tunnel, an "
        "encapsulated packet larger than the path MTU with DF set, so look at TUNNEL-MTU on the same device) or "
        "no carrier (a link down; on a tunnel, no route to the remote). The counter that moved names the cause, "
        "and a tunnel has no queue to fill. The cause decides the fix: ring overflow with the ring "
        "below its maximum is RING-RX-DROPS; with the ring at its maximum the vCPU cannot keep up, so spread "
        "the work; rx_dropped together with softnet backlog drops (SOFTIRQ-DROPS) is the backlog, fixed by "
        "net.core.netdev_max_backlog and RPS; rx_dropped alone is usually traffic nobody listens for (LLDP, "
        "other ethertypes), harmless unless it is the traffic you expected. A warning when counters rose "
        "during the sample, info when they are in the counters since boot only.",
        "Backlog: sysctl -w net.core.netdev_max_backlog=N (twice the present value) and a file in "
        "/etc/sysctl.d/, or `guestcheck tune`; ring at its maximum: more queues, RPS, spread interrupts. "
        "Otherwise look before fixing: ip -s -s link show dev IFACE, tc -s qdisc show dev IFACE, "
        "tcpdump -e -n -i IFACE not ip and not ip6 and not arp (unknown ethertypes), "
        "perf record -e skb:kfree_skb (where the kernel frees dropped packets).",
        judged_on=PRESENT,
    ),
}


def _queue_irqs(steering: NicSteering, queue: str) -> List[str]:
    """The CPUs of the interrupts that serve `queue` ("rx-0"): virtio names its input and output vectors,
    most others one vector per queue pair (eth0-TxRx-0, ena's eth0-Tx-Rx-0)."""
    direction, _, number = queue.partition("-")
    out = []
    for irq in steering.irqs:
        name = irq.name.lower()
        if ("input" in name and direction == "tx") or ("output" in name and direction == "rx"):
            continue
        if str(queue_index(irq.name, -1)) == number:
            cpus = irq.effective or irq.affinity
            if cpus:
                out.append(f"cpu{cpus} (IRQ {irq.irq} {irq.name})" if "," not in cpus and "-" not in cpus
                           else f"cpus {cpus} (IRQ {irq.irq} {irq.name})")
    return out


def queue_cpu(steering: Optional[NicSteering], queue: Optional[str]) -> str:
    """Where a queue's work runs, in words: its interrupt's CPU, then its RPS (rx) or XPS (tx) mask."""
    if steering is None or queue is None:
        return ""
    places = _queue_irqs(steering, queue)
    masks = steering.rps_cpus if queue.startswith("rx-") else steering.xps_cpus
    cpus = mask_cpus(masks.get(queue))
    if cpus:
        kind = "RPS" if queue.startswith("rx-") else "XPS"
        places.append(f"{kind} cpus {','.join(str(c) for c in sorted(cpus))}")
    return "; ".join(places)


def _rising(rates: Dict[str, CounterRate]) -> Dict[str, CounterRate]:
    return {k: v for k, v in rates.items() if v.rise}


def _since_boot(rates: Dict[str, CounterRate]) -> Dict[str, int]:
    return {k: v.total for k, v in rates.items() if v.total}


def _risen(rates: Dict[str, CounterRate]) -> str:
    return ", ".join(f"{k} +{v.rise} ({v.per_s:g}/s)" for k, v in rates.items())


def _allowances(nic: Nic, c: NicCounters) -> Optional[Finding]:
    rates = {k: v for k, v in c.driver.items() if (d := curated(k)) is not None and d.kind == "allowance"}
    if not rates:
        return None
    rising, old = _rising(rates), _since_boot(rates)
    evidence: dict = {"counters": {k: {"total": v.total, "rise": v.rise, "per_s": v.per_s} for k, v in rates.items()},
                      "driver_version": nic.driver_version, "sampled_seconds": c.seconds if c.sampled else 0}
    if ALLOWANCE_GAUGE in c.gauges:
        evidence[ALLOWANCE_GAUGE] = c.gauges[ALLOWANCE_GAUGE]
    which = rising or old
    if not which:
        return None
    kinds = [d.what for k in which if (d := curated(k)) is not None]
    fix = "\n".join([ALLOWANCE_FIXES[k] for k in kinds if k in ALLOWANCE_FIXES]
                    + ([SPREAD_FIX] if {"bw_in", "bw_out", "pps"} & set(kinds) else []))
    if rising:
        return Finding("NIC-ALLOWANCE-EXCEEDED", Severity.CRITICAL, nic.name,
                       f"the instance's network limits are reached now: {_risen(rising)}", evidence, fix, "host")
    evidence["next"] = "sample under load (guestcheck doctor --sample 10) to see it happen"
    what = ", ".join(f"{k} {v}" for k, v in old.items())
    return Finding("NIC-ALLOWANCE-EXCEEDED", Severity.WARNING, nic.name,
                   f"the instance's network limits were reached since boot ({what}), not during the sample",
                   evidence, fix, "host")


_QUEUE_ADVICE = {
    "drops": "the driver dropped received frames (no memory for a buffer, or malformed frames): check memory "
             "pressure, and the CPU named here",
    "xdp_tx_drops": "an XDP program's transmits found the queue full: the CPU named here is busy, or one queue "
                    "takes all XDP_TX traffic",
    "tx_queue_stop": "the TX ring filled: an allowance (see NIC-ALLOWANCE-EXCEEDED), the CPU named here not "
                     "freeing completions, or one queue carrying all flows (ethtool -L IFACE combined N)",
    "rx_no_memory": "netvsc could not allocate receive buffers: memory pressure (free -m, /proc/pressure/memory)",
    "tx_no_space": "netvsc's send buffer was full: the host consumed slowly or the CPU sending was starved",
}


def _queues(nic: Nic, c: NicCounters, steering: Optional[NicSteering]) -> Optional[Finding]:
    kinds = ("queue-drop", "queue-stop", "device-drop")
    rates = {k: v for k, v in c.driver.items() if (d := curated(k)) is not None and d.kind in kinds}
    rising, old = _rising(rates), _since_boot(rates)
    shown = rising or {k: v for k, v in rates.items() if v.total}
    if not shown:
        return None
    per_counter = {}
    parts = []
    for name, rate in shown.items():
        d = curated(name)
        if d is None:
            continue
        where = queue_cpu(steering, d.queue)
        per_counter[name] = {"queue": d.queue, "cpu": where, "total": rate.total, "rise": rate.rise,
                             "per_s": rate.per_s, "what": _QUEUE_ADVICE.get(d.what, "")}
        amount = f"+{rate.rise} ({rate.per_s:g}/s)" if rising else str(rate.total)
        label = f"{d.queue} {d.what}" if d.queue else d.what
        parts.append(f"{label} {amount}" + (f" on {where}" if where else ""))
    if rising:
        return Finding("NIC-QUEUE-DROPS", Severity.WARNING, nic.name,
                       "driver queues dropping during the sample: " + "; ".join(parts),
                       {"counters": per_counter}, "")
    return Finding("NIC-QUEUE-DROPS", Severity.INFO, nic.name,
                   "driver queue drops since boot, none during the sample: " + "; ".join(parts),
                   {"counters": per_counter, "since_boot": old,
                    "next": "sample under load (guestcheck doctor --sample 10) to see whether it still happens"}, "")


def _softnet_dropping(facts: Facts) -> List[str]:
    s = facts.softirq
    return [f"cpu{c.cpu}" for c in s.cpus if c.dropped] if s is not None else []


_TX_COUNTERS = {"tx_dropped", "tx_errors", "tx_aborted_errors", "tx_carrier_errors"}


def _tunnel_mtu(facts: Facts, name: str) -> Optional[Finding]:
    """The TUNNEL-MTU finding on this device, if it has one: the likeliest cause of its failed sends."""
    from guestcheck.checks.tunnels import mtu_finding

    tunnel = next((t for t in facts.tunnels if t.name == name), None)
    return mtu_finding(tunnel) if tunnel is not None else None


def _transmit_causes(moved: set, name: str, mtu: Optional[Finding], tunnels: list) -> str:
    """Why sends failed, by the counter that moved (tx_aborted_errors and tx_carrier_errors are parts of
    tx_errors; tx_errors without either says only that the driver gave up)."""
    tunnel = mtu is not None or any(t.name == name for t in tunnels)
    causes = []
    if "tx_aborted_errors" in moved:
        causes.append("tx_aborted_errors: the send was aborted; on a tunnel, the encapsulated packet was refused "
                      "on its way out: larger than the path MTU with DF set (see TUNNEL-MTU), or its route failed")
    if "tx_carrier_errors" in moved:
        causes.append("tx_carrier_errors: no carrier: the link or its peer was down" +
                      ("; on a tunnel, no route to the remote (ENETUNREACH)" if tunnel else ""))
    if "tx_errors" in moved and not {"tx_aborted_errors", "tx_carrier_errors"} & moved:
        causes.append("tx_errors: the driver could not send (no detail counter says why: "
                      "ip -s -s link show dev IFACE, ethtool -S IFACE)")
    if "tx_dropped" in moved:
        causes.append("tx_dropped: " + (
            "the tunnel dropped packets it could not encapsulate or send: larger than the path MTU with DF set "
            "(see TUNNEL-MTU), or no route to the remote" if tunnel else
            "the driver dropped packets it was given: a full transmit queue or ring; tc -s qdisc show dev "
            "IFACE shows the qdisc's own drops"))
    if mtu is not None and causes:
        causes.append(f"this device has TUNNEL-MTU: {mtu.summary}; its fix ({mtu.fix or 'see explain'}) stops "
                      "these")
    return "; ".join(causes)


def _interface(facts: Facts, nic: Nic, c: NicCounters) -> Optional[Finding]:
    rates = dict(c.interface)
    if ring_can_grow(nic):  # ring overflow is RING-RX-DROPS's to report, with the ring fix
        for name in ring_overflow(nic, c):
            rates.pop(name, None)
    rising, old = _rising(rates), _since_boot(rates)
    if not rising and not old:
        return None
    which = rising or {k: v for k, v in rates.items() if v.total}
    evidence: dict = {"counters": {k: {"total": v.total, "rise": v.rise, "per_s": v.per_s} for k, v in which.items()}}
    fix = ""
    overflow = set(ring_overflow(nic, c)) & set(which)
    backlog = _softnet_dropping(facts) if "rx_dropped" in which else []
    if overflow:
        evidence["cause"] = ("the receive ring was full and it is at its maximum (or its size is unknown): the "
                             "vCPU that empties it cannot keep up; spread the work (more queues: ethtool -L, "
                             "RPS, interrupts on other CPUs) and look at what else runs on it")
        if nic.rings is not None:
            evidence["rings"] = {"rx": nic.rings.rx, "rx_max": nic.rings.rx_max}
    elif backlog and rising:
        backlog_now = (facts.softirq.netdev_max_backlog if facts.softirq else None) or 1000
        evidence["cause"] = (f"the per-CPU backlog was full ({', '.join(backlog)} dropped during the sample, "
                             "see SOFTIRQ-DROPS): raise net.core.netdev_max_backlog and spread receive work "
                             "with RPS (or `guestcheck tune`)")
        fix = "\n".join(sysctl_lines({"net.core.netdev_max_backlog": max(4096, backlog_now * 2)}, "backlog"))
    elif "rx_dropped" in which:
        evidence["cause"] = ("frames the stack had no use for (an unknown protocol or ethertype, such as LLDP) "
                             "or the driver dropped (no buffer); harmless unless it is traffic you expect")
    if "rx_nohandler" in which:
        evidence["nohandler"] = ("frames no protocol handler took on a device that delivers to exact matches "
                                 "only: a bond's or team's inactive port, or a port whose master takes no "
                                 "such frames; expected on a backup port")
    mtu = _tunnel_mtu(facts, nic.name)
    transmit = _transmit_causes(set(which), nic.name, mtu, facts.tunnels)
    if transmit:
        evidence["transmit"] = transmit
    if mtu is not None and _TX_COUNTERS & set(which):
        evidence["see"] = f"TUNNEL-MTU [{nic.name}]: {mtu.summary}"
    name = shell_word(nic.name)
    evidence["look"] = [f"ip -s -s link show dev {name}", f"tc -s qdisc show dev {name}", f"ethtool -S {name}"]
    also = (f"; TUNNEL-MTU on {nic.name}: packets larger than the path allows"
            if "see" in evidence else "")
    if rising:
        return Finding("NIC-DROPS", Severity.WARNING, nic.name,
                       f"dropping during the sample: {_risen(rising)}{also}", evidence, fix)
    what = ", ".join(f"{k} {v}" for k, v in old.items()) + also
    evidence["next"] = "sample under load (guestcheck doctor --sample 10) to see whether it still happens"
    return Finding("NIC-DROPS", Severity.INFO, nic.name, f"drops since boot ({what}), none during the sample",
                   evidence, "")


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [("NIC-*", ("link",))]


def run(facts: Facts, judged: Judged) -> List[Finding]:
    counters = {c.nic: c for c in facts.nic_counters}
    steering = {s.nic: s for s in facts.softirq.nics} if facts.softirq is not None else {}
    out = []
    for nic in present_nics(facts, judged):
        c = counters.get(nic.name)
        if c is None:
            continue
        for finding in (_allowances(nic, c), _queues(nic, c, steering.get(nic.name)), _interface(facts, nic, c)):
            if finding is not None:
                out.append(finding)
    return out

