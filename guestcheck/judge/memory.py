"""Is this machine's memory its own? One verdict the tuner and doctor use, decided once per judging.

Memory is "guaranteed" when nothing visible lets the host take it back: no balloon or removable memory the
guest obeys, no container limit below MemTotal, no shared OpenVZ node. Drivers present in every guest of a
platform are judged by what they show, not by being there: an idle Xen balloon is neutral (Xen only moves it
on an explicit toolstack request), an idle VMware balloon is "unknown" (ESXi inflates it on its own unless a
reservation, invisible from inside, backs the VM), Hyper-V's hv_balloon is neutral on Azure (no Dynamic
Memory there) and "unknown" elsewhere unless it shows ballooned or hot-added pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from guestcheck.facts import Balloon, Beancounter, Facts, Memory, Virt

UNLIMITED = 1 << 60
OPENVZ_PAGE = 4096  # beancounter pages (OpenVZ and Virtuozzo run on x86 only)
BEANCOUNTER_MEMORY = {"physpages", "privvmpages", "vmguarpages", "oomguarpages", "kmemsize", "swappages",
                      "lockedpages", "shmpages"}


def fmt_bytes(n: Optional[int]) -> str:
    if n is None:
        return "?"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n} B"


def fmt_installed(n: Optional[int]) -> str:
    """The firmware's RAM total rounded up to a MiB: it lacks the sub-MiB BIOS holes, so this is the VM's size."""
    return fmt_bytes(None if n is None else -(-n // (1 << 20)) << 20)


@dataclass(frozen=True)
class MemoryVerdict:
    """What the tuner needs: guaranteed (None = unknown), why not, and how much RAM can really be used."""

    guaranteed: Optional[bool]
    reasons: list[str] = field(default_factory=list)  # why not guaranteed first, then what is unknown
    total_bytes: Optional[int] = None  # usable RAM: MemTotal capped by a cgroup or OpenVZ limit
    mem_total_bytes: Optional[int] = None  # MemTotal as the kernel reports it
    installed_bytes: Optional[int] = None  # the firmware's System RAM
    inflated_bytes: Optional[int] = None  # what balloons hold now, where any shows it
    # the reasons (a subset of `reasons`) that are a virtio-balloon holding nothing now, or one that deflates
    # under memory pressure: the host can take memory back, but has not, or gives it back when the guest needs it
    idle_balloons: list[str] = field(default_factory=list)

    @property
    def only_idle_balloons(self) -> bool:
        """Not guaranteed only because of idle or deflate-on-oom balloons (the tuner's bounded allowance)."""
        return self.guaranteed is False and bool(self.reasons) and all(r in self.idle_balloons for r in self.reasons)

    @property
    def label(self) -> str:
        if self.guaranteed:
            return "guaranteed"
        word = "not guaranteed" if self.guaranteed is False else "unknown"
        return f"{word}: {'; '.join(self.reasons)}" if self.reasons else word


def _row(rows: Optional[list[Beancounter]], name: str) -> Optional[Beancounter]:
    return next((r for r in rows or [] if r.resource == name), None)


def _pages(value: Optional[int]) -> Optional[int]:
    return None if value is None or value >= UNLIMITED else value * OPENVZ_PAGE


def inflation(b: Balloon) -> str:
    if b.inflated_bytes is None:
        return "inflation not visible (needs root and debugfs, or a kernel with meminfo Balloon)"
    return f"{fmt_bytes(b.inflated_bytes)} inflated now"


NOT_GUARANTEED, UNKNOWN = "no", "unknown"


@dataclass(frozen=True)
class BalloonVerdict:
    """What one balloon device means for the guarantee."""

    verdict: Optional[tuple[str, str]]  # (NOT_GUARANTEED or UNKNOWN, the reason) or None: neutral
    idle: bool = False  # a bound virtio-balloon that holds 0 B now, or deflates on OOM and holds nothing known


def deflate_on_oom_text(b: Balloon) -> str:
    return {True: ", deflate-on-oom on", False: ", deflate-on-oom off", None: ""}[b.deflate_on_oom]


VIRTIO_MEM_BOUND = "virtio-mem bound: the host can unplug memory"


def balloon_verdict(b: Balloon, cloud: Optional[str]) -> BalloonVerdict:
    """Per kind: whether it lets the host take memory back."""
    held = b.inflated_bytes or 0
    if not b.bound:
        return BalloonVerdict(None)
    if b.kind == "virtio-balloon":
        idle = b.inflated_bytes == 0 or (b.deflate_on_oom is True and b.inflated_bytes is None)
        return BalloonVerdict((NOT_GUARANTEED, f"virtio-balloon bound ({inflation(b)}{deflate_on_oom_text(b)})"),
                              idle)
    if b.kind == "virtio-mem":
        return BalloonVerdict((NOT_GUARANTEED, VIRTIO_MEM_BOUND))
    if b.kind == "hv-balloon":
        if held or b.added_bytes:
            return BalloonVerdict((NOT_GUARANTEED, f"Hyper-V Dynamic Memory: {fmt_bytes(held)} ballooned out, "
                                                   f"{fmt_bytes(b.added_bytes or 0)} hot-added"))
        if cloud != "microsoft":
            return BalloonVerdict((UNKNOWN, "Hyper-V hv_balloon bound: whether Dynamic Memory is on is not visible"))
        return BalloonVerdict(None)
    if b.kind == "xen-balloon":
        if held or xen_shrinking(b):
            return BalloonVerdict((NOT_GUARANTEED, f"Xen balloon holds {fmt_bytes(held)}, target "
                                   f"{fmt_bytes(b.target_bytes)} vs current {fmt_bytes(b.current_bytes)}"))
        return BalloonVerdict(None)
    if b.kind == "vmw-balloon":
        return BalloonVerdict((NOT_GUARANTEED, f"VMware balloon holds {fmt_bytes(held)}") if held else
                              (UNKNOWN, "VMware balloon loaded: a memory reservation is not visible from inside"))
    return BalloonVerdict(None)


def xen_shrinking(b: Balloon) -> bool:
    """The toolstack's target is below the current size: the host is taking memory back."""
    return b.target_bytes is not None and b.current_bytes is not None and b.target_bytes < b.current_bytes


def _balloon_reasons(m: Memory, cloud: Optional[str], no: list[str], unknown: list[str], idle: list[str]) -> None:
    for b in m.balloons:
        judged = balloon_verdict(b, cloud)
        verdict = judged.verdict
        if verdict is not None:
            (no if verdict[0] == NOT_GUARANTEED else unknown).append(verdict[1])
            if judged.idle:
                idle.append(verdict[1])
    counted = sum(b.inflated_bytes or 0 for b in m.balloons)
    if m.balloon_bytes and not counted:
        no.append(f"the kernel counts {fmt_bytes(m.balloon_bytes)} in balloons (meminfo Balloon)")


def _beancounter_reasons(m: Memory, no: list[str], unknown: list[str]) -> None:
    if m.beancounters is None:
        return
    failed = [r for r in m.beancounters if r.failcnt and r.resource in BEANCOUNTER_MEMORY]
    for r in failed:
        no.append(f"OpenVZ {r.resource} refused allocations {r.failcnt} times")
    vmguar, physpages = _row(m.beancounters, "vmguarpages"), _row(m.beancounters, "physpages")
    guarantee = _pages(vmguar.barrier if vmguar else None)
    ram = _pages(physpages.limit if physpages else None)
    if guarantee is not None and ram is not None and guarantee < ram:
        no.append(f"OpenVZ guarantees {fmt_bytes(guarantee)} of {fmt_bytes(ram)} (vmguarpages)")
    elif not failed:
        unknown.append("OpenVZ/Virtuozzo container: the node's memory is shared and its overcommit is not visible")


def memory_verdict(facts: Facts, virt: Optional[Virt] = None) -> MemoryVerdict:
    """The guarantee, on the platform `virt` (the judge's; by default what `facts.virt` says)."""
    virt = facts.virt if virt is None else virt
    m = facts.memory
    if m is None:
        return MemoryVerdict(None, ["memory facts were not collected"])
    no: list[str] = []
    unknown: list[str] = []
    idle: list[str] = []
    _balloon_reasons(m, virt.cloud, no, unknown, idle)
    _beancounter_reasons(m, no, unknown)
    usable = m.total_bytes
    limit = m.cgroup_limit_bytes
    if limit is not None and (m.total_bytes is None or limit < m.total_bytes):
        no.append(f"cgroup memory limit {fmt_bytes(limit)} below MemTotal {fmt_bytes(m.total_bytes)}")
        usable = limit
    physpages = _row(m.beancounters, "physpages")
    ram = _pages(physpages.limit if physpages else None)
    if ram is not None and usable is not None:
        usable = min(usable, ram)
    container = virt.container
    if container and container != "openvz" and m.beancounters is None and limit is None:
        unknown.append(f"{container} container: it shares the host's memory and no reservation is visible")
    if m.total_bytes is None:
        unknown.append("MemTotal could not be read")
    guaranteed = False if no else (None if unknown else True)
    inflated = [b.inflated_bytes for b in m.balloons if b.inflated_bytes is not None]
    return MemoryVerdict(guaranteed, no + unknown, usable, m.total_bytes, m.firmware_bytes,
                         sum(inflated) if inflated else m.balloon_bytes, idle)
