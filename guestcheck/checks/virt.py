"""Say what this machine runs on: the context for every other finding."""

from __future__ import annotations

from guestcheck.checks import FindingDoc
from guestcheck.facts import Facts
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged

FINDINGS = {
    "VIRT-PLATFORM": FindingDoc(
        "The hypervisor and container guestcheck detected",
        "info",
        "Which hypervisor runs this machine (kvm, qemu, xen, hyperv, vmware, virtualbox, firecracker, ...), "
        "the cloud when DMI or ACPI names it (else the DMI system vendor in lower case, when the DMI says this "
        "is a virtual machine), and any container. Judged from the raw evidence at every run (a saved facts "
        "file too): ACPI table OEM ids, DMI strings and the SMBIOS VM bit, the CPUID hypervisor bit and "
        "signature (byte for byte), /sys/hypervisor, paravirtual clocksources and container markers, weighed "
        "like systemd-detect-virt; EC2 without the CPUID hypervisor bit is bare metal on Amazon; a leftover "
        "marker such as /.dockerenv is set aside when PID 1 shares the host's initial namespaces. Sources only "
        "root may read are listed; a verdict they could change says so (\"run as root to ...\").",
        "Nothing to fix: this is context for the other findings.",
        fix_on="",
    ),
}


def run(facts: Facts, judged: Judged) -> list[Finding]:
    v = judged.virt
    hv = v.hypervisor or "none (bare metal)"
    parts = [f"hypervisor {hv}" + (f" ({'; '.join(v.caveats)})" if v.caveats else "")]
    if v.cloud:
        parts.append(f"cloud {v.cloud}")
    parts.append(f"container {v.container or 'none'}")
    evidence = {
        "hypervisor": v.hypervisor,
        "cloud": v.cloud,
        "container": v.container,
        "decided_by": [f"{e.source}: {e.value}" for e in v.evidence if e.used and e.points_to],
        "set_aside": [f"{e.source}: {e.value} ({e.note})" for e in v.evidence if not e.used and not e.error],
        "could_not_read": [f"{e.detail}: {e.error}" for e in v.evidence if e.error],
        "caveats": list(v.caveats),
    }
    return [Finding("VIRT-PLATFORM", Severity.INFO, "machine", ", ".join(parts), evidence, "")]
