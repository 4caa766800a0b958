"""What the machine says about hypervisors, clouds and containers: raw evidence only, no verdict.

Each source becomes one `Evidence` row whose `value` is what the source said, unjudged (documented in
guestcheck/judge/virt.py, which turns the rows into the verdict). A source that exists but cannot be read
(root-only files as non-root) becomes a row with an empty value and `error` set, so the judge knows what it
could not see and `facts.problems` can name it.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from guestcheck.collect import cpuid
from guestcheck.collect.fs import cat, escape_bytes, exists, listdir, read
from guestcheck.facts import Evidence, Problem
from guestcheck.regularfile import read_regular
from guestcheck.roots import Roots

# World-readable DMI strings (product_serial, product_uuid, board_serial are root-only and not needed).
DMI_FIELDS = ("sys_vendor", "product_name", "product_version", "bios_vendor", "board_vendor", "chassis_vendor",
              "chassis_asset_tag")
ACPI_TABLES = ("DSDT", "FACP", "APIC")
SMBIOS_TYPE0 = "firmware/dmi/entries/0-0/raw"  # the BIOS information structure (root-only)

# Why each root-only source matters, for facts.problems.
WHY_DENIED = {
    "acpi": "the ACPI table OEM ids tell Firecracker from other KVM hosts",
    "smbios": "the SMBIOS 'virtual machine' bit tells a cloud VM from a bare-metal server",
    "marker": "PID 1's environment names the container manager",
    "dmi": "the DMI strings name the platform",
}


def _read_raw(path: str, size: int) -> tuple[Optional[bytes], Optional[str]]:
    """(the first `size` bytes, None), or (None, "denied"/"missing"/errno name/"not a regular file")."""
    try:
        return read_regular(path, size, truncate=True), None
    except PermissionError:
        return None, "denied"
    except FileNotFoundError:
        return None, "missing"
    except OSError as e:
        return None, type(e).__name__
    except ValueError as e:
        return None, str(e)


def _denied(source: str, path: str) -> Evidence:
    return Evidence(source, path, "", None, "", used=False, error="permission denied")


def _dmi(roots: Roots) -> list[Evidence]:
    base = os.path.join(roots.sys, "class/dmi/id")
    out = []
    for fld in DMI_FIELDS:
        path = os.path.join(base, fld)
        got = read(path)
        if got.value is not None and got.value.strip():
            out.append(Evidence("dmi", path, got.value.strip()))
        elif got.problem == "denied":
            out.append(_denied("dmi", path))
    return out


def _smbios(roots: Roots) -> list[Evidence]:
    """BIOS characteristics extension byte 2 of SMBIOS type 0, as 0xNN ("short" when the table has none)."""
    path = os.path.join(roots.sys, SMBIOS_TYPE0)
    raw, problem = _read_raw(path, 64)
    if problem == "denied":
        return [_denied("smbios", path)]
    if raw is None:
        return []
    value = f"0x{raw[19]:02x}" if len(raw) >= 20 and raw[1] >= 20 else "short"
    return [Evidence("smbios", path + " byte 19", value)]


def _acpi(roots: Roots) -> list[Evidence]:
    base = os.path.join(roots.sys, "firmware/acpi/tables")
    denied = False
    for table in ACPI_TABLES:
        header, problem = _read_raw(os.path.join(base, table), 36)
        denied = denied or problem == "denied"
        if header and len(header) >= 16:
            oem = escape_bytes(header[10:16].rstrip(b" \0"))
            return [Evidence("acpi", f"{base}/{table} OEM ID", oem)]
    return [_denied("acpi", base)] if denied else []


def _cpuid(roots: Roots, reader: Callable[[], Optional[str]]) -> list[Evidence]:
    cpuinfo = cat(os.path.join(roots.proc, "cpuinfo"))
    if cpuinfo is None:
        return []
    flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines() if ln.startswith("flags")), None)
    if flags is None:
        return []  # no x86 flags line (another architecture): the source says nothing
    bit = "hypervisor" in flags
    out = [Evidence("cpuinfo", f"{roots.proc}/cpuinfo flags", "hypervisor" if bit else "no hypervisor flag")]
    vendor = reader() if bit else None
    if vendor:
        out.append(Evidence("cpuid", "CPUID leaf 0x40000000", vendor))
    return out


def _misc_vm(roots: Roots) -> list[Evidence]:
    out = []
    hv_type = cat(os.path.join(roots.sys, "hypervisor/type"))
    if hv_type:
        out.append(Evidence("hypervisor-sysfs", f"{roots.sys}/hypervisor/type", hv_type))
    caps = cat(os.path.join(roots.proc, "xen/capabilities"))
    if caps is not None:
        out.append(Evidence("hypervisor-sysfs", f"{roots.proc}/xen/capabilities", caps))
    for rel in ("device-tree/hypervisor/compatible", "device-tree/compatible"):
        value = cat(os.path.join(roots.proc, rel))
        if value:
            out.append(Evidence("device-tree", f"/proc/{rel}", value.replace("\0", " ").strip()))
    clocks = cat(os.path.join(roots.sys, "devices/system/clocksource/clocksource0/available_clocksource"))
    if clocks:
        out.append(Evidence("clocksource", "available_clocksource", clocks))
    if listdir(os.path.join(roots.sys, "bus/vmbus/devices")):
        out.append(Evidence("bus", f"{roots.sys}/bus/vmbus/devices", "present"))
    return out


def _containers(roots: Roots) -> list[Evidence]:
    out = []
    if exists(os.path.join(roots.proc, "vz")) and not exists(os.path.join(roots.proc, "bc")):
        out.append(Evidence("marker", f"{roots.proc}/vz without /proc/bc", "present"))
    osrelease = cat(os.path.join(roots.proc, "sys/kernel/osrelease"))
    if osrelease:
        out.append(Evidence("marker", f"{roots.proc}/sys/kernel/osrelease", osrelease))
    for path in (os.path.join(roots.run, "host/container-manager"), os.path.join(roots.run, "systemd/container")):
        value = cat(path)
        if value:
            out.append(Evidence("marker", path, value))
    environ_path = os.path.join(roots.proc, "1/environ")
    environ = read(environ_path)
    if environ.problem == "denied":
        out.append(_denied("marker", environ_path))
    for var in (environ.value or "").split("\0"):
        if var.startswith("container="):  # only this variable: the rest of PID 1's environment stays private
            out.append(Evidence("marker", environ_path, var))
    if exists(os.path.join(roots.run, ".containerenv")):
        out.append(Evidence("marker", f"{roots.run}/.containerenv", "present"))
    if exists(os.path.join(roots.top, ".dockerenv")):
        out.append(Evidence("marker", os.path.join(roots.top, ".dockerenv"), "present"))
    cgroup = cat(os.path.join(roots.proc, "1/cgroup"))
    if cgroup:
        out.append(Evidence("cgroup", f"{roots.proc}/1/cgroup", cgroup))
    for ns in ("pid", "user"):
        try:
            link = os.readlink(os.path.join(roots.proc, "self/ns", ns))
        except OSError:
            continue
        out.append(Evidence("namespace", f"{roots.proc}/self/ns/{ns}", link))
    return out


def collect_evidence(roots: Roots, cpuid_reader: Callable[[], Optional[str]] = cpuid.hypervisor_vendor
                     ) -> list[Evidence]:
    """Everything the machine says about virtualisation; guestcheck.judge.virt weighs it."""
    return (_acpi(roots) + _dmi(roots) + _smbios(roots) + _cpuid(roots, cpuid_reader) + _misc_vm(roots)
            + _containers(roots))


def problems(evidence: list[Evidence], is_root: bool = False) -> list[Problem]:
    """One facts.problems entry per source that exists but could not be read (even as root, in some sandboxes)."""
    hint = "denied even to root" if is_root else "run as root"
    return [Problem("denied", e.detail, f"{WHY_DENIED.get(e.source, 'a platform source')}; {hint}")
            for e in evidence if e.error]
