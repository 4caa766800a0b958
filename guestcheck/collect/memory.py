"""Read what decides whether this machine's memory is really its own.

Sources, each read through `Roots` and each optional (a missing file says nothing):
- /proc/meminfo: MemTotal, swap, Committed_AS / CommitLimit, and "Balloon:" (kernels that count balloon
  pages, NR_BALLOON_PAGES: every balloon driver together).
- /proc/sys/vm/overcommit_memory and overcommit_ratio.
- Balloons and removable memory: virtio devices with id 5 (virtio-balloon) and 0x18 (virtio-mem) and the driver
  bound to them; Hyper-V hv_balloon bound on vmbus; the Xen balloon's target_kb and info/current_kb; VMware's
  vmw_balloon module.
- How far a balloon is inflated, first source that speaks wins (the most direct first):
  1. the driver's own file: debugfs /sys/kernel/debug/virtio-balloon, hv-balloon or vmmemctl (root, debugfs
     mounted), Xen's info/low_kb + info/high_kb (pages its balloon holds);
  2. meminfo "Balloon:" (exact, newer kernels only; it sums every driver, so it is used when one is bound);
  3. /proc/vmstat balloon_inflate - balloon_deflate (pages moved through the kernel's balloon page list since
     boot: virtio-balloon and vmw_balloon use it, so it is the inflation where 1 and 2 are missing).
  MemTotal vs the firmware's "System RAM" (/sys/firmware/memmap) is recorded but not used to infer inflation:
  the kernel's own reservations (code, crashkernel, page tables) already make that gap 2-10 %, so it would cry
  wolf on small guests; the gap is shown as evidence instead.
- OpenVZ/Virtuozzo /proc/user_beancounters (limits and failcnt; root only).
- The cgroup memory limit over the whole system or container: memory.max (v2) or memory.limit_in_bytes (v1) at
  the root of the cgroup mount (the container's own root under a cgroup namespace) and in every ancestor of
  PID 1's cgroup that is visible, the tightest one winning. PID 1's own leaf "init.scope" is skipped: a limit
  there binds only systemd, not the machine.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from guestcheck.collect.area import Run
from guestcheck.collect.fs import cat, cat_int, exists, link_name, listdir, read
from guestcheck.facts import Balloon, Beancounter, Memory
from guestcheck.quantities import maybe_int, parse_int
from guestcheck.roots import Roots

VIRTIO_ID_BALLOON = 5
VIRTIO_ID_MEM = 0x18
VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2
HV_DM_CLASS_ID = "525074dc-8985-46e2-8057-a307dc18a502"  # Hyper-V Dynamic Memory device on vmbus
UNLIMITED = 1 << 60  # cgroup v1 prints LONG_MAX rounded to a page, beancounters print LONG_MAX
VMW_PAGE = 4096  # vmmemctl counts 4 KiB pages whatever the guest's page size


def page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4096


def parse_meminfo(text: str) -> dict[str, int]:
    """Fields in bytes ("kB" lines) or as plain counts (HugePages_*)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        value = maybe_int(parts[0]) if parts else None
        if value is None:
            continue
        out[key.strip()] = value * (1024 if parts[1:2] == ["kB"] else 1)
    return out


def parse_key_numbers(text: str) -> dict[str, int]:
    """"key value", "key: value kB" or "key : value" lines: the first integer after the key (kB made bytes)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z_][\w ()-]*?)\s*[: ]\s*([0-9]{1,20})\s*(kB|pages)?", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = parse_int(m.group(2)) * (1024 if m.group(3) == "kB" else 1)
    return out


def parse_modules(text: str) -> set[str]:
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def parse_beancounters(text: str) -> tuple[Optional[str], list[Beancounter]]:
    """The first container's rows ("uid: resource held maxheld barrier limit failcnt", uid on its first row)."""
    uid: Optional[str] = None
    rows: list[Beancounter] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] in ("Version:", "uid"):
            continue
        if parts[0].endswith(":"):
            if uid is not None:
                break  # the host node lists every container: keep the first (in a container, its own)
            uid = parts[0][:-1]
            parts = parts[1:]
        if len(parts) != 6 or parts[0] == "dummy":
            continue
        try:
            held, maxheld, barrier, limit, failcnt = (parse_int(p, signed=True) for p in parts[1:])
        except ValueError:
            continue
        rows.append(Beancounter(parts[0], held, maxheld, barrier, limit, failcnt))
    return uid, rows


def parse_cgroup_file(text: str) -> dict[str, str]:
    """/proc/1/cgroup: controller -> path; the v2 hierarchy is under ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                out[controller] = parts[2]
    return out


def firmware_ram(roots: Roots) -> Optional[int]:
    """Bytes of "System RAM" the firmware handed over (boot RAM plus hot-added blocks)."""
    base = os.path.join(roots.sys, "firmware/memmap")
    total, seen = 0, False
    for entry in listdir(base):
        if cat(os.path.join(base, entry, "type")) != "System RAM":
            continue
        start = cat_int(os.path.join(base, entry, "start"), 16)
        end = cat_int(os.path.join(base, entry, "end"), 16)
        if start is not None and end is not None and end >= start:
            total += end - start + 1
            seen = True
    return total if seen else None


def _debugfs(roots: Roots, name: str) -> Optional[dict[str, int]]:
    text = read(os.path.join(roots.sys, "kernel/debug", name)).value
    return parse_key_numbers(text) if text is not None else None


def virtio_balloons(roots: Roots) -> list[Balloon]:
    out = []
    base = os.path.join(roots.sys, "bus/virtio/devices")
    for dev in listdir(base):
        device_id = cat_int(os.path.join(base, dev, "device"), 16)
        if device_id not in (VIRTIO_ID_BALLOON, VIRTIO_ID_MEM):
            continue
        driver = link_name(os.path.join(base, dev, "driver"))
        if device_id == VIRTIO_ID_MEM:
            out.append(Balloon("virtio-mem", driver == "virtio_mem", dev, detail=f"driver {driver or 'none'}"))
            continue
        features = cat(os.path.join(base, dev, "features")) or ""
        deflate = features[VIRTIO_BALLOON_F_DEFLATE_ON_OOM] == "1" if len(features) > 2 else None
        balloon = Balloon("virtio-balloon", driver == "virtio_balloon", dev, deflate_on_oom=deflate,
                          detail=f"driver {driver or 'none'}")
        stats = _debugfs(roots, "virtio-balloon")  # "InflatedTotal: N kB" / "InflatedFree: N kB"
        if stats and ("InflatedTotal" in stats or "InflatedFree" in stats):
            balloon.inflated_bytes = stats.get("InflatedTotal", 0) + stats.get("InflatedFree", 0)
            balloon.inflated_source = f"{roots.sys}/kernel/debug/virtio-balloon"
        out.append(balloon)
    return out


def hv_balloon(roots: Roots, modules: set[str]) -> Optional[Balloon]:
    drv = os.path.join(roots.sys, "bus/vmbus/drivers/hv_balloon")
    bound = [e for e in listdir(drv) if os.path.islink(os.path.join(drv, e)) and e != "module"]
    if not bound:
        devices = os.path.join(roots.sys, "bus/vmbus/devices")
        offered = [d for d in listdir(devices)
                   if HV_DM_CLASS_ID in (cat(os.path.join(devices, d, "class_id")) or "").lower()]
        if not offered and "hv_balloon" not in modules:
            return None
        return Balloon("hv-balloon", False, offered[0] if offered else "hv_balloon",
                       detail="Dynamic Memory device offered, driver not bound" if offered else "module loaded")
    balloon = Balloon("hv-balloon", True, bound[0], detail="driver hv_balloon bound")
    stats = _debugfs(roots, "hv-balloon")
    if stats:
        page = stats.get("page_size", 4096)
        ballooned = stats.get("pages_ballooned", stats.get("pages_ballooned_out"))
        if ballooned is not None:
            balloon.inflated_bytes = ballooned * page
            balloon.inflated_source = f"{roots.sys}/kernel/debug/hv-balloon"
        if "pages_added" in stats:
            balloon.added_bytes = stats["pages_added"] * page
    return balloon


def xen_balloon(roots: Roots) -> Optional[Balloon]:
    base = os.path.join(roots.sys, "devices/system/xen_memory/xen_memory0")
    if not exists(base):
        return None
    kib = lambda rel: cat_int(os.path.join(base, rel))  # noqa: E731
    target, current, low, high = kib("target_kb"), kib("info/current_kb"), kib("info/low_kb"), kib("info/high_kb")
    balloon = Balloon("xen-balloon", True, "xen_memory0",
                      target_bytes=None if target is None else target * 1024,
                      current_bytes=None if current is None else current * 1024)
    if low is not None or high is not None:
        balloon.inflated_bytes = ((low or 0) + (high or 0)) * 1024
        balloon.inflated_source = f"{base}/info/low_kb + high_kb"
    return balloon


def vmw_balloon(roots: Roots, modules: set[str]) -> Optional[Balloon]:
    if "vmw_balloon" not in modules and not exists(os.path.join(roots.sys, "module/vmw_balloon")):
        return None
    balloon = Balloon("vmw-balloon", True, "vmw_balloon", detail="module loaded")
    stats = _debugfs(roots, "vmmemctl")  # "target: N pages" / "current: N pages" (first occurrences)
    if stats:
        if "target" in stats:
            balloon.target_bytes = stats["target"] * VMW_PAGE
        if "current" in stats:
            balloon.current_bytes = balloon.inflated_bytes = stats["current"] * VMW_PAGE
            balloon.inflated_source = f"{roots.sys}/kernel/debug/vmmemctl"
    return balloon


def _ancestors(path: str) -> list[str]:
    """"/a/b/init.scope" -> ["", "a", "a/b"]: the cgroups whose limits bind PID 1's whole tree."""
    parts = [p for p in path.strip("/").split("/") if p]
    if parts and parts[-1] == "init.scope":
        parts = parts[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts) + 1)]


def _cgroup_number(text: Optional[str]) -> Optional[int]:
    if text is None or text == "max":
        return None
    value = maybe_int(text)
    return None if value is None or value >= UNLIMITED else value


def cgroup_limit(roots: Roots, memory: Memory) -> None:
    """The tightest memory limit over PID 1's tree, and the usage where it is set."""
    base = os.path.join(roots.sys, "fs/cgroup")
    pid1 = parse_cgroup_file(cat(os.path.join(roots.proc, "1/cgroup")) or "")
    hierarchies = []  # (directory of the mount, PID 1's path there, limit file, usage file)
    for mount in (base, os.path.join(base, "unified")):
        if exists(os.path.join(mount, "cgroup.controllers")):
            hierarchies.append((mount, pid1.get("", "/"), "memory.max", "memory.current"))
            break
    if exists(os.path.join(base, "memory/memory.limit_in_bytes")):
        hierarchies.append((os.path.join(base, "memory"), pid1.get("memory", "/"),
                            "memory.limit_in_bytes", "memory.usage_in_bytes"))
    for mount, path, limit_file, usage_file in hierarchies:
        for rel in _ancestors(path):
            d = os.path.join(mount, rel) if rel else mount
            limit = _cgroup_number(cat(os.path.join(d, limit_file)))
            if limit is not None and (memory.cgroup_limit_bytes is None or limit < memory.cgroup_limit_bytes):
                memory.cgroup_limit_bytes = limit
                memory.cgroup_limit_source = os.path.join(d, limit_file)
                memory.cgroup_usage_bytes = _cgroup_number(cat(os.path.join(d, usage_file)))


def _beancounters(roots: Roots, memory: Memory) -> None:
    path = os.path.join(roots.proc, "user_beancounters")
    got = read(path)
    if got.value is None:
        if got.problem != "missing":
            memory.unknown["beancounters"] = f"{path}: {got.problem} (run as root)"
        return
    memory.beancounters_uid, memory.beancounters = parse_beancounters(got.value)


def collect_memory(roots: Roots) -> Memory:
    memory = Memory()
    meminfo_text = cat(os.path.join(roots.proc, "meminfo"))
    if meminfo_text is None:
        memory.unknown["meminfo"] = f"{roots.proc}/meminfo is not readable"
    mi = parse_meminfo(meminfo_text or "")
    memory.total_bytes = mi.get("MemTotal")
    memory.available_bytes = mi.get("MemAvailable")
    memory.swap_total_bytes = mi.get("SwapTotal")
    memory.swap_free_bytes = mi.get("SwapFree")
    memory.committed_bytes = mi.get("Committed_AS")
    memory.commit_limit_bytes = mi.get("CommitLimit")
    memory.balloon_bytes = mi.get("Balloon")
    memory.firmware_bytes = firmware_ram(roots)
    memory.overcommit_memory = cat_int(os.path.join(roots.proc, "sys/vm/overcommit_memory"))
    memory.overcommit_ratio = cat_int(os.path.join(roots.proc, "sys/vm/overcommit_ratio"))
    vmstat = parse_key_numbers(cat(os.path.join(roots.proc, "vmstat")) or "")
    memory.vmstat_balloon_inflate = vmstat.get("balloon_inflate")
    memory.vmstat_balloon_deflate = vmstat.get("balloon_deflate")

    modules = parse_modules(cat(os.path.join(roots.proc, "modules")) or "")
    memory.balloons = virtio_balloons(roots)
    memory.balloons += [b for b in (hv_balloon(roots, modules), xen_balloon(roots), vmw_balloon(roots, modules)) if b]
    _fill_inflation(roots, memory)
    _beancounters(roots, memory)
    cgroup_limit(roots, memory)
    return memory


def _fill_inflation(roots: Roots, memory: Memory) -> None:
    """Where a driver's own file said nothing, take the kernel-wide counters (see the module docstring)."""
    bound = [b for b in memory.balloons if b.bound and b.kind != "virtio-mem"]
    silent = [b for b in bound if b.inflated_bytes is None]
    if not silent:
        return
    if memory.balloon_bytes is not None and len(bound) == 1:
        silent[0].inflated_bytes, silent[0].inflated_source = memory.balloon_bytes, f"{roots.proc}/meminfo Balloon"
        return
    inflate, deflate = memory.vmstat_balloon_inflate, memory.vmstat_balloon_deflate
    if inflate is not None and deflate is not None:
        for b in silent:
            if b.kind in ("virtio-balloon", "vmw-balloon"):
                b.inflated_bytes = max(inflate - deflate, 0) * page_size()
                b.inflated_source = f"{roots.proc}/vmstat balloon_inflate - balloon_deflate"
                return


AREA = "memory"


def collect(run: Run) -> Memory:
    return collect_memory(run.roots)
