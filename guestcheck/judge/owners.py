"""Who else owns a setting: another agent that manages a sysctl key or a NIC setting.

`other_owners` is the one answer to "who else owns this", used by doctor (the evidence of the findings about
that setting) and by `guestcheck tune` (warn, or refuse without --force where the agent puts its value back).
Setting names: "sysctl:KEY", "irq" (IRQ affinity), "rps", "xps", "channels", "rings", "offloads", "mtu" and
"link" (the interface itself: its addresses, a VF's configuration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from guestcheck.facts import OtherAgents


@dataclass(frozen=True)
class Owner:
    """An agent that owns a setting, and whether it puts its own value back."""

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
