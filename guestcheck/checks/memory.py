"""Is this machine's memory its own, and are its vCPUs? One verdict the tuner can use, and the findings behind it.

Memory is "guaranteed" when nothing visible lets the host take it back: no balloon or removable memory the
guest obeys, no container limit below MemTotal, no shared OpenVZ node. Drivers present in every guest of a
platform are judged by what they show, not by being there: an idle Xen balloon is neutral (Xen only moves it
on an explicit toolstack request), an idle VMware balloon is "unknown" (ESXi inflates it on its own unless a
reservation, invisible from inside, backs the VM), Hyper-V's hv_balloon is neutral on Azure (no Dynamic
Memory there) and "unknown" elsewhere unless it shows ballooned or hot-added pages. The verdict itself is the
judge's (guestcheck/judge/memory.py); these are the findings that show it and what is behind it. CPU steal
lives here too: with ballooning it is the other sign of an oversold host.
"""

from __future__ import annotations

from typing import Any, Optional

from guestcheck.checks import FindingDoc
from guestcheck.facts import Balloon, Facts, Memory
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.judge.memory import (
    VIRTIO_MEM_BOUND,
    deflate_on_oom_text,
    fmt_bytes,
    fmt_installed,
    inflation,
    xen_shrinking,
)

STEAL_WARN_TOTAL = 10.0  # percent over all CPUs
STEAL_WARN_CPU = 25.0  # percent on one CPU
STEAL_INFO = 2.0
COMMIT_WARN_RATIO = 0.9  # Committed_AS / CommitLimit under vm.overcommit_memory=2
CGROUP_WARN_USAGE = 0.9

ASK_PROVIDER = "Ask the provider for dedicated (reserved) memory."
BALLOON_FIX = (
    f"{ASK_PROVIDER} On your own host remove the balloon device: libvirt: <memballoon model='none'/> in the domain "
    "XML; QEMU: drop -device virtio-balloon; Proxmox: qm set VMID --balloon 0; Firecracker: do not configure "
    "/balloon. If the host must keep it, enable deflate-on-oom (libvirt <memballoon model='virtio' "
    "deflate-on-oom='on'/>, QEMU -device virtio-balloon,deflate-on-oom=on) so the guest takes memory back under "
    "pressure. Unbinding the guest's driver stops inflation, but an overcommitted host then swaps the guest's "
    "memory instead, which is worse."
)

FINDINGS = {
    "MEM-GUARANTEED": FindingDoc(
        "Whether this machine's memory is guaranteed",
        "info",
        "One verdict over every memory signal: 'guaranteed' when nothing visible lets the host take memory back, "
        "'not guaranteed' with the reasons (a bound balloon or virtio-mem device, ballooned pages, a container limit "
        "below MemTotal, OpenVZ failures), or 'unknown' when a platform can reclaim memory without showing it. "
        "The tuner refuses profiles that need guaranteed memory unless this says guaranteed. Also shows RAM (MemTotal, "
        "the firmware's System RAM), swap and the usable total.",
        "Nothing to fix by itself: see the MEM- findings it lists. " + ASK_PROVIDER,
        fix_on="",  # a verdict: the findings it lists carry the fixes
    ),
    "MEM-BALLOON": FindingDoc(
        "A virtio-balloon device is bound: the host can take memory back",
        "info",
        "The guest's virtio_balloon driver serves a balloon device, so the host can inflate it at any time and the "
        "memory it takes is gone from the guest (from MemTotal, or counted as used with deflate-on-oom). Warning "
        "when it is inflated now: page cache and socket buffers shrink and throughput drops under memory pressure. "
        "The inflation comes from debugfs, meminfo 'Balloon:' or /proc/vmstat balloon_inflate - balloon_deflate.",
        BALLOON_FIX,
        fix_on="host",
    ),
    "MEM-VIRTIO-MEM": FindingDoc(
        "A virtio-mem device is bound: the host can unplug memory",
        "info",
        "virtio-mem lets the host plug and unplug guest memory in blocks; memory it plugged can be asked back.",
        f"{ASK_PROVIDER} On your own host give the VM its memory as boot memory (QEMU -m SIZE without a virtio-mem "
        "device; libvirt: no <memory model='virtio-mem'> device) or keep requested-size at the full size.",
        fix_on="host",
    ),
    "MEM-HV-BALLOON": FindingDoc(
        "Hyper-V Dynamic Memory (hv_balloon)",
        "info",
        "The hv_balloon driver serves Hyper-V's Dynamic Memory device: with Dynamic Memory on, the host hot-adds "
        "memory on demand and balloons it out when other VMs need it. Warning when pages are ballooned out now. "
        "Azure does not use Dynamic Memory, so there it is neutral; elsewhere an idle driver cannot say whether "
        "Dynamic Memory is on (debugfs hv-balloon shows pages ballooned and hot-added).",
        "Hyper-V Manager > VM Settings > Memory: clear 'Enable Dynamic Memory' and set Startup RAM to the full "
        "size (PowerShell: Set-VMMemory -VMName NAME -DynamicMemoryEnabled $false -StartupBytes SIZE). "
        + ASK_PROVIDER,
        fix_on="host",
    ),
    "MEM-XEN-BALLOON": FindingDoc(
        "The Xen balloon holds memory or its target is below the current size",
        "info",
        "Xen guests always have a balloon driver; it moves memory only when the toolstack sets a target. "
        "A target below the current size, or pages held in the balloon (info/low_kb + high_kb), mean the host "
        "has taken or is taking memory back.",
        "On the host: xl mem-set DOMAIN SIZE (and memory = maxmem in the domain config so it stays). " + ASK_PROVIDER,
        fix_on="host",
    ),
    "MEM-VMW-BALLOON": FindingDoc(
        "The VMware balloon (vmw_balloon)",
        "info",
        "ESXi inflates the guest's balloon on its own when the host runs short of memory, unless the VM has a full "
        "memory reservation, which the guest cannot see. Warning when the balloon holds pages now "
        "(debugfs vmmemctl 'current').",
        "vSphere: VM > Edit Settings > Memory > Reservation: tick 'Reserve all guest memory (All locked)'; on a "
        "hosted VM ask the provider for a full memory reservation. Do not remove vmw_balloon: ESXi then swaps "
        "the VM's memory on the host instead, which is worse.",
        fix_on="host",
    ),
    "MEM-BEANCOUNTERS": FindingDoc(
        "OpenVZ/Virtuozzo container limits (user_beancounters)",
        "info",
        "An OpenVZ/Virtuozzo container shares the node's kernel and memory; /proc/user_beancounters shows its "
        "limits, and failcnt counts allocations refused. Warning when any failcnt is above 0: memory (physpages, "
        "privvmpages, kmemsize) or socket buffers (tcpsndbuf, tcprcvbuf, othersockbuf) ran out. Memory is "
        "guaranteed only up to vmguarpages.",
        "On the node: vzctl set CTID --ram SIZE --swap SIZE --save (Virtuozzo 7: prlctl set CTID --memsize SIZE); "
        "for socket-buffer failures raise tcpsndbuf/tcprcvbuf/othersockbuf (vzctl set CTID --tcpsndbuf B:L "
        "--save). On a hosted container ask for more RAM, or a VM with dedicated memory.",
        fix_on="host",
    ),
    "MEM-CGROUP-LIMIT": FindingDoc(
        "A cgroup memory limit below MemTotal applies to the whole system or container",
        "info",
        "MemTotal shows the host's RAM, but a cgroup limit (memory.max, or v1 memory.limit_in_bytes) over PID 1's "
        "tree caps what this container can use; socket buffers count against it. Buffers sized for MemTotal can "
        "get the container OOM-killed. Warning when usage is at 90 % of the limit or more.",
        "Size buffers for the limit, not MemTotal, or raise it where the container is defined: docker update "
        "--memory SIZE CONTAINER; LXC: lxc.cgroup2.memory.max = SIZE; systemd: systemctl set-property UNIT "
        "MemoryMax=SIZE; Kubernetes: resources.limits.memory.",
        fix_on="",  # the limit is set where the container is defined, by its admin: advice in the hint
    ),
    "MEM-OVERCOMMIT": FindingDoc(
        "Memory overcommit policy and how much is committed",
        "info",
        "vm.overcommit_memory 0 (heuristic) and 1 (always) let programs commit more than RAM + swap; when they use "
        "it the OOM killer ends one. Mode 2 refuses commitments past CommitLimit = swap + RAM x overcommit_ratio "
        "/ 100, so allocations fail instead. Warning when Committed_AS exceeds RAM + swap (modes 0 and 1) or "
        "reaches 90 % of CommitLimit (mode 2).",
        "Add RAM or swap, or find the process committing it (ps -eo pid,vsz,rss,comm --sort=-vsz). "
        "`sysctl vm.overcommit_memory=2` trades OOM kills for failed allocations but caps commitments at swap + "
        "overcommit_ratio % of RAM (default 50 %): set vm.overcommit_ratio (e.g. 90) with it and test first, "
        "since programs that reserve far more than they use (JVMs, browsers) then fail to start.",
        fix_on="",  # a trade-off for the admin to weigh, not a command: advice in the hint
    ),
    "CPU-STEAL": FindingDoc(
        "CPU steal time over the sample",
        "info",
        "Steal is time a vCPU was ready to run while the host ran something else: the sign of an oversold host or "
        "a burstable instance out of credits. Packets wait for a vCPU, so latency and throughput suffer. "
        "Sampled over --sample seconds from /proc/stat per CPU. Warning at 10 % over all CPUs or 25 % on one.",
        "Ask the provider for dedicated vCPUs or a non-shared instance type (AWS: a non-burstable type, or "
        "T-family with unlimited credits; GCP: not the shared-core e2-micro/small/medium; Azure: not B-series). "
        "On your own host do not overcommit vCPUs and pin them: libvirt <cputune><vcpupin vcpu='0' cpuset='2'/>"
        "</cputune>; Proxmox: qm set VMID --affinity 2-3.",
        fix_on="host",
    ),
}


def balloon_finding(b: Balloon, cloud: Optional[str]) -> Optional[Finding]:
    """What doctor reports of one balloon device (the guarantee it bears on is the judge's)."""
    evidence: dict[str, Any] = {"device": b.device, "bound": b.bound, "detail": b.detail,
                                "inflated_bytes": b.inflated_bytes, "inflated_source": b.inflated_source}
    held = b.inflated_bytes or 0
    if b.kind == "virtio-balloon":
        if not b.bound:
            return None
        evidence["deflate_on_oom"] = b.deflate_on_oom
        return Finding("MEM-BALLOON", Severity.WARNING if held else Severity.INFO, b.device,
                       f"virtio-balloon bound: the host can take memory back ({inflation(b)}{deflate_on_oom_text(b)})",
                       evidence, BALLOON_FIX)
    if b.kind == "virtio-mem":
        if not b.bound:
            return None
        return Finding("MEM-VIRTIO-MEM", Severity.INFO, b.device, VIRTIO_MEM_BOUND, evidence,
                       FINDINGS["MEM-VIRTIO-MEM"].fix)
    if b.kind == "hv-balloon":
        evidence["added_bytes"] = b.added_bytes
        if b.bound and held:
            summary = f"Hyper-V Dynamic Memory has ballooned out {fmt_bytes(held)}"
        elif b.bound:
            summary = f"hv_balloon bound ({inflation(b)})" + (": Azure, no Dynamic Memory"
                                                               if cloud == "microsoft" else "")
        else:
            summary = f"hv_balloon not bound ({b.detail}): Dynamic Memory requests are not obeyed"
        return Finding("MEM-HV-BALLOON", Severity.WARNING if held else Severity.INFO, b.device, summary, evidence,
                       FINDINGS["MEM-HV-BALLOON"].fix)
    if b.kind == "xen-balloon":
        evidence.update(target_bytes=b.target_bytes, current_bytes=b.current_bytes)
        bad = bool(held or xen_shrinking(b))
        return Finding("MEM-XEN-BALLOON", Severity.WARNING if bad else Severity.INFO, b.device,
                       f"Xen balloon: target {fmt_bytes(b.target_bytes)}, current {fmt_bytes(b.current_bytes)}, "
                       f"holding {fmt_bytes(held)}", evidence, FINDINGS["MEM-XEN-BALLOON"].fix)
    if b.kind == "vmw-balloon":
        evidence["target_bytes"] = b.target_bytes
        return Finding("MEM-VMW-BALLOON", Severity.WARNING if held else Severity.INFO, b.device,
                       f"VMware balloon loaded ({inflation(b)}, target {fmt_bytes(b.target_bytes)})", evidence,
                       FINDINGS["MEM-VMW-BALLOON"].fix)
    return None


def _beancounter_finding(m: Memory) -> Optional[Finding]:
    if m.beancounters is None:
        return None
    failed = [r for r in m.beancounters if r.failcnt]
    evidence: dict[str, Any] = {"uid": m.beancounters_uid}
    for r in m.beancounters:
        if r.failcnt or r.resource in ("physpages", "vmguarpages", "privvmpages", "tcpsndbuf", "tcprcvbuf"):
            evidence[r.resource] = {"held": r.held, "barrier": r.barrier, "limit": r.limit, "failcnt": r.failcnt}
    if failed:
        summary = "allocations refused: " + ", ".join(f"{r.resource} failcnt {r.failcnt}" for r in failed)
    else:
        summary = f"OpenVZ/Virtuozzo container {m.beancounters_uid or ''}, no failures".replace("  ", " ")
    return Finding("MEM-BEANCOUNTERS", Severity.WARNING if failed else Severity.INFO, "memory", summary, evidence,
                   FINDINGS["MEM-BEANCOUNTERS"].fix)


def _cgroup_finding(m: Memory) -> Optional[Finding]:
    limit = m.cgroup_limit_bytes
    if limit is None or (m.total_bytes is not None and limit >= m.total_bytes):
        return None
    usage = m.cgroup_usage_bytes
    full = usage is not None and usage >= CGROUP_WARN_USAGE * limit
    evidence = {"limit_bytes": limit, "usage_bytes": usage, "mem_total_bytes": m.total_bytes,
                "source": m.cgroup_limit_source}
    return Finding("MEM-CGROUP-LIMIT", Severity.WARNING if full else Severity.INFO, "memory",
                   f"cgroup limit {fmt_bytes(limit)} (using {fmt_bytes(usage)}) below MemTotal "
                   f"{fmt_bytes(m.total_bytes)}", evidence, hint=FINDINGS["MEM-CGROUP-LIMIT"].fix)


def _overcommit_finding(m: Memory) -> Optional[Finding]:
    committed, limit, mode = m.committed_bytes, m.commit_limit_bytes, m.overcommit_memory
    if committed is None or limit is None:
        return None
    ram_swap = (m.total_bytes or 0) + (m.swap_total_bytes or 0)
    ratio = committed / limit if limit else None
    evidence = {"overcommit_memory": mode, "overcommit_ratio": m.overcommit_ratio, "committed_bytes": committed,
                "commit_limit_bytes": limit, "committed_ratio": None if ratio is None else round(ratio, 3),
                "ram_plus_swap_bytes": ram_swap}
    head = f"vm.overcommit_memory={mode if mode is not None else '?'}, Committed_AS {fmt_bytes(committed)}"
    hint = FINDINGS["MEM-OVERCOMMIT"].fix
    if mode == 2 and ratio is not None and ratio >= COMMIT_WARN_RATIO:
        return Finding("MEM-OVERCOMMIT", Severity.WARNING, "memory",
                       f"{head} is {ratio:.0%} of CommitLimit {fmt_bytes(limit)}: allocations will fail soon",
                       evidence, hint="Raise vm.overcommit_ratio or add swap (CommitLimit = swap + RAM x ratio / 100).")
    if mode != 2 and ram_swap and committed > ram_swap:
        return Finding("MEM-OVERCOMMIT", Severity.WARNING, "memory",
                       f"{head} exceeds RAM + swap {fmt_bytes(ram_swap)}: the OOM killer fires if it is used",
                       evidence, hint=hint)
    severity = Severity.INFO if mode == 1 else Severity.OK
    tail = ", always overcommits" if mode == 1 else ""
    return Finding("MEM-OVERCOMMIT", severity, "memory",
                   f"{head} of RAM + swap {fmt_bytes(ram_swap)}{tail}", evidence, hint=hint if mode == 1 else "")


def _verdict_finding(judged: Judged, m: Memory) -> Finding:
    v = judged.memory
    swap = m.swap_total_bytes
    sizes = f"{fmt_bytes(v.total_bytes)} usable"
    if v.installed_bytes:
        sizes += f" of {fmt_installed(v.installed_bytes)} installed"
    sizes += f", swap {fmt_bytes(swap) if swap else 'none'}"
    evidence = {"guaranteed": v.guaranteed, "reasons": v.reasons, "usable_bytes": v.total_bytes,
                "mem_total_bytes": v.mem_total_bytes, "installed_bytes": v.installed_bytes,
                "inflated_bytes": v.inflated_bytes, "available_bytes": m.available_bytes,
                "swap_total_bytes": swap, "swap_free_bytes": m.swap_free_bytes, "unknown": dict(m.unknown)}
    severity = Severity.OK if v.guaranteed else Severity.INFO
    hint = "" if v.guaranteed else f"The MEM- findings listed say what lets the host take memory back. {ASK_PROVIDER}"
    return Finding("MEM-GUARANTEED", severity, "memory", f"memory {v.label} ({sizes})", evidence, hint=hint)


def _steal_finding(facts: Facts) -> Finding:
    s = facts.cpu_steal
    fix = FINDINGS["CPU-STEAL"].fix
    if s is None or s.percent is None:
        why = "/proc/stat unreadable" if s is None else f"no CPU time passed in a {s.seconds:g} s sample"
        evidence = {} if s is None else {"since_boot_percent": s.since_boot_percent, "notes": s.notes}
        return Finding("CPU-STEAL", Severity.INFO, "cpu", f"steal not measured ({why})", evidence, "")
    worst = max(s.per_cpu.items(), key=lambda kv: kv[1], default=("", 0.0))
    evidence = {"percent": s.percent, "per_cpu": s.per_cpu, "seconds": s.seconds,
                "since_boot_percent": s.since_boot_percent, "changed_cpus": s.changed_cpus, "notes": s.notes}
    summary = f"steal {s.percent:.1f}% over {s.seconds:g} s"
    if worst[1] > 0 and len(s.per_cpu) > 1:
        summary += f" (worst {worst[0]} {worst[1]:.1f}%)"
    if s.percent >= STEAL_WARN_TOTAL or worst[1] >= STEAL_WARN_CPU:
        return Finding("CPU-STEAL", Severity.WARNING, "cpu", summary + ": the host is oversold", evidence, fix)
    severity = Severity.INFO if s.percent >= STEAL_INFO else Severity.OK
    return Finding("CPU-STEAL", severity, "cpu", summary, evidence, fix if severity is Severity.INFO else "")


def run(facts: Facts, judged: Judged) -> list[Finding]:
    out = [_steal_finding(facts)]
    m = facts.memory
    if m is None:
        return out
    out.append(_verdict_finding(judged, m))
    out += [f for f in (balloon_finding(b, judged.virt.cloud) for b in m.balloons) if f]
    out += [f for f in (_beancounter_finding(m), _cgroup_finding(m), _overcommit_finding(m)) if f]
    return out
