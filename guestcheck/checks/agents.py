"""Settings another agent manages: who else owns a sysctl key or a NIC setting, named in the findings it concerns.

`other_owners` is the one answer to "who else owns this", used by doctor (the evidence of the findings about
that setting) and by `guestcheck tune` (warn, or refuse without --force where the agent puts its value back).
Setting names: "sysctl:KEY", "irq" (IRQ affinity), "rps", "xps", "channels", "rings", "offloads", "mtu" and
"link" (the interface itself: its addresses, a VF's configuration).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import List, Optional

from guestcheck.checks import FindingDoc
from guestcheck.facts import Facts, OtherAgents
from guestcheck.findings import Finding, Severity


@dataclass(frozen=True)
class Owner:
    agent: str  # irqbalance, TuneD, google_set_multiqueue, NetworkManager, cloud-init
    detail: str  # what it does to the setting, and where that is configured
    puts_back: bool  # it restores its own value over a change: `tune` refuses without --force
    value: Optional[str] = None  # the value it sets, where it names one (TuneD's sysctl)

    def line(self) -> str:
        return f"{self.agent}: {self.detail}"


_MULTIQUEUE = ("runs at boot and sets every NIC's channels, queue IRQ affinity and XPS itself "
               "(GoogleCloudPlatform/guest-configs google_set_multiqueue)")


def _tuned(agents: OtherAgents, setting: str) -> List[Owner]:
    names = " ".join(agents.tuned_profiles)
    state = {True: "running", False: "not running now, applies it when it starts", None: "state unknown"}
    if setting.startswith("sysctl:"):
        key = setting[len("sysctl:"):]
        if key in agents.tuned_sysctl:
            value = agents.tuned_sysctl[key]
            where = agents.tuned_sysctl_files.get(key, "")
            return [Owner("TuneD", f"active profile {names} sets {key} = {value} ({where}; TuneD "
                          f"{state[agents.tuned_running]}) and puts it back at every start", True, value)]
        return []
    plugins = {"net": ("channels", "rings", "offloads", "mtu"), "irqbalance": ("irq",), "scheduler": ("irq",)}
    return [Owner("TuneD", f"active profile {names} has a [{section}] section that sets this at every start", False)
            for section, owned in plugins.items() if section in agents.tuned_sections and setting in owned]


def other_owners(agents: Optional[OtherAgents], setting: str, iface: Optional[str] = None) -> List[Owner]:
    """Every other agent that manages `setting` (on `iface`, for NIC settings), from the collected facts."""
    if agents is None:
        return []
    out: List[Owner] = []
    if agents.irqbalance and setting == "irq":
        out.append(Owner("irqbalance", "running: it moves queue interrupts between CPUs by load, every 10 s, "
                         "over a hand-set smp_affinity", True))
    if agents.irqbalance and setting == "rps":
        out.append(Owner("irqbalance", "running: it moves the queue interrupts, so an RPS mask chosen around "
                         "today's IRQ CPUs stops fitting (amzn/amzn-drivers ENA_Linux_Best_Practices.rst)", True))
    if agents.tuned_profiles:
        out += _tuned(agents, setting)
    if agents.google_multiqueue and setting in ("irq", "xps", "channels"):
        out.append(Owner("google_set_multiqueue", f"{agents.google_multiqueue} {_MULTIQUEUE}", False))
    if agents.google_agents and setting in ("irq", "xps", "channels", "link"):
        out.append(Owner("Google guest agent", f"running ({', '.join(agents.google_agents)}): it configures "
                         "the NICs at boot and when they change", False))
    if iface is not None and agents.networkmanager_managed.get(iface) and setting in (
            "link", "mtu", "offloads", "channels", "rings"):
        out.append(Owner("NetworkManager", f"manages {iface} (/run/NetworkManager/devices): its connection "
                         "profile sets this whenever it activates the device", False))
    if iface is not None and setting == "mtu" and iface in agents.cloud_init_mtu:
        out.append(Owner("cloud-init", f"{agents.cloud_init_file} sets {iface} mtu {agents.cloud_init_mtu[iface]}, "
                         "written again at boot", False))
    return out


# Which settings each finding is about, by finding id pattern (the first match wins).
FINDING_SETTINGS = [
    ("SOFTIRQ-DROPS", ("sysctl:net.core.netdev_max_backlog", "rps")),
    ("SOFTIRQ-SQUEEZE", ("sysctl:net.core.netdev_budget", "sysctl:net.core.netdev_budget_usecs")),
    ("SOFTIRQ-IMBALANCE", ("irq", "rps")),
    ("SOFTIRQ-NO-RPS", ("rps",)),
    ("SOFTIRQ-NO-XPS", ("xps",)),
    ("IRQ*", ("irq",)),
    ("QUEUES-*", ("channels",)),
    ("RING*", ("rings",)),
    ("OFFLOAD-*", ("offloads",)),
    ("PATH-MTU*", ("mtu",)),
    ("TUNNEL-MTU*", ("mtu",)),
    ("CONNTRACK-TABLE-FULL", ("sysctl:net.netfilter.nf_conntrack_max",)),
    ("NIC-*", ("link",)),
    ("AZURE-*", ("link",)),
]


def settings_of(finding_id: str) -> tuple:
    return next((s for pattern, s in FINDING_SETTINGS if fnmatch.fnmatchcase(finding_id, pattern)), ())


def annotate(facts: Facts, finding: Finding) -> Finding:
    """The finding with the other owners of what it is about in its evidence (`other_owners`), when there are."""
    settings = settings_of(finding.id)
    if not settings or facts.agents is None:
        return finding
    nics = {n.name for n in facts.nics}
    iface = finding.subject if finding.subject in nics else None
    if iface is None:  # a route or tunnel finding names its device in the evidence
        iface = next((v for k, v in finding.evidence.items()
                      if k in ("dev", "lower", "nic") and isinstance(v, str) and v in nics), None)
    lines: List[str] = []
    for setting in settings:
        for owner in other_owners(facts.agents, setting, iface):
            if owner.line() not in lines:
                lines.append(owner.line())
    if not lines:
        return finding
    return dataclasses.replace(finding, evidence=dict(finding.evidence, other_owners=lines))


FINDINGS = {
    "AGENTS-OTHER-OWNERS": FindingDoc(
        "Other agents manage network settings here",
        "info",
        "irqbalance, an active TuneD profile, Google's guest environment (google_set_multiqueue), "
        "NetworkManager or cloud-init set some of what guestcheck judges and tunes. A change made by hand or by "
        "`guestcheck tune` may be undone by them: TuneD applies its profile's [sysctl] section at every start "
        "(redhat-performance/tuned #816), irqbalance moves interrupts every 10 s, google_set_multiqueue and "
        "cloud-init set queues and MTU at boot. Each finding about such a setting names the other owner in its "
        "evidence (other_owners); `guestcheck tune` warns before changing it, and refuses without --force where "
        "the agent would put its own value back (a TuneD profile's sysctl key, irqbalance against IRQ or RPS "
        "changes).",
        "Change the setting where its owner keeps it (the TuneD profile, /etc/default/irqbalance, the netplan or "
        "NetworkManager connection), or stop that agent from managing it; then `guestcheck tune`.",
        fix_on="",  # names the other agents; the findings about their settings carry the fixes
    ),
}


def _summary(agents: OtherAgents) -> List[str]:
    parts = []
    if agents.irqbalance:
        parts.append("irqbalance (IRQ affinity)")
    if agents.tuned_profiles:
        keys = len(agents.tuned_sysctl)
        parts.append(f"TuneD profile {' '.join(agents.tuned_profiles)} ({keys} sysctl key(s)"
                     + (f", [{'], ['.join(agents.tuned_sections)}]" if agents.tuned_sections else "") + ")")
    if agents.google_multiqueue:
        parts.append("google_set_multiqueue (channels, IRQ affinity, XPS at boot)")
    if agents.google_agents:
        parts.append("Google guest agent")
    managed = sorted(i for i, m in agents.networkmanager_managed.items() if m)
    if managed:
        parts.append(f"NetworkManager ({', '.join(managed)})")
    if agents.cloud_init_mtu:
        parts.append(f"cloud-init MTU ({', '.join(f'{i} {m}' for i, m in sorted(agents.cloud_init_mtu.items()))})")
    return parts


def run(facts: Facts) -> list[Finding]:
    agents = facts.agents
    if agents is None:
        return []
    parts = _summary(agents)
    if not parts:
        return []
    evidence = {"agents": parts, "tuned_sysctl": dict(agents.tuned_sysctl), "notes": list(agents.notes)}
    return [Finding("AGENTS-OTHER-OWNERS", Severity.INFO, "machine", "also managed by: " + "; ".join(parts),
                    evidence, "")]
