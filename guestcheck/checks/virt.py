"""Say what this machine runs on: the context for every other finding."""

from __future__ import annotations

from guestcheck.checks import FindingDoc
from guestcheck.facts import Facts
from guestcheck.findings import Finding, Severity

FINDINGS = {
    "VIRT-PLATFORM": FindingDoc(
        "The hypervisor and container guestcheck detected",
        "info",
        "Which hypervisor runs this machine (kvm, qemu, xen, hyperv, vmware, virtualbox, firecracker, ...), "
        "the cloud when DMI or ACPI names it, and any container. Decided from DMI, ACPI table OEM ids, the "
        "CPUID hypervisor leaf, /sys/hypervisor, paravirtual clocksources and container markers, weighed "
        "like systemd-detect-virt; a leftover marker such as /.dockerenv is set aside when PID 1 shares "
        "the host's initial namespaces.",
        "Nothing to fix: this is context for the other findings.",
    ),
}


def run(facts: Facts) -> list[Finding]:
    v = facts.virt
    hv = v.hypervisor or "none (bare metal)"
    parts = [f"hypervisor {hv}"]
    if v.cloud:
        parts.append(f"cloud {v.cloud}")
    parts.append(f"container {v.container or 'none'}")
    evidence = {
        "hypervisor": v.hypervisor,
        "cloud": v.cloud,
        "container": v.container,
        "decided_by": [f"{e.source}: {e.value}" for e in v.evidence if e.used and e.points_to],
        "set_aside": [f"{e.source}: {e.value} ({e.note})" for e in v.evidence if not e.used],
    }
    return [Finding("VIRT-PLATFORM", Severity.INFO, "machine", ", ".join(parts), evidence, "")]
