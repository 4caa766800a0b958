"""Shared by the platform matrix tests: systemd-detect-virt's names in guestcheck's terms.

Each case compares guestcheck's verdict with systemd-detect-virt's in a real environment; where they differ,
the case must carry the reason (`why`), so every disagreement is explained where it is tested.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

# systemd-detect-virt --vm name -> (hypervisor, cloud) as guestcheck reports them
SYSTEMD_VM = {
    "none": (None, None),
    "kvm": ("kvm", None),
    "qemu": ("qemu", None),
    "amazon": ("kvm", "amazon"),
    "google": ("kvm", "google"),
    "microsoft": ("hyperv", None),
    "oracle": ("virtualbox", None),
    "vmware": ("vmware", None),
    "xen": ("xen", None),
    "bhyve": ("bhyve", None),
    "vm-other": ("unknown", None),
}
SYSTEMD_CONTAINER = {"none": None, "container-other": "unknown"}


@dataclass
class Seen:
    """What both tools said in one environment."""

    systemd_vm: str
    systemd_container: str
    hypervisor: Optional[str]
    cloud: Optional[str]
    container: Optional[str]
    facts: dict

    def systemd_as_guestcheck(self) -> tuple[Optional[str], Optional[str]]:
        hv, _cloud = SYSTEMD_VM.get(self.systemd_vm, (self.systemd_vm, None))
        container = SYSTEMD_CONTAINER.get(self.systemd_container, self.systemd_container)
        return hv, container


# The shell snippet each environment runs: both systemd-detect-virt answers, then guestcheck's facts.
PROBE = ('printf "SDV_VM=%s\\n" "$(systemd-detect-virt --vm)"; '
         'printf "SDV_C=%s\\n" "$(systemd-detect-virt -c)"; '
         'echo ===FACTS===; python3 -m guestcheck facts --json --sample 0')


def parse_probe(stdout: str) -> Seen:
    head, _, body = stdout.partition("===FACTS===")
    fields = dict(ln.split("=", 1) for ln in head.splitlines() if ln.startswith("SDV_"))
    facts = json.loads(body)
    v = facts["virt"]
    return Seen(fields.get("SDV_VM", "?"), fields.get("SDV_C", "?"), v["hypervisor"], v["cloud"], v["container"],
                facts)


def assert_agrees_or_explained(seen: Seen, why: dict[str, str]) -> None:
    """guestcheck's hypervisor and container equal systemd-detect-virt's, or the case explains the difference."""
    hv, container = seen.systemd_as_guestcheck()
    if hv != seen.hypervisor:
        assert why.get("hypervisor"), f"unexplained: systemd-detect-virt --vm {seen.systemd_vm}, guestcheck {seen}"
    if container != seen.container:
        assert why.get("container"), f"unexplained: systemd-detect-virt -c {seen.systemd_container}, guestcheck {seen}"
