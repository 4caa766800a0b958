"""Other agents that manage network settings here (irqbalance, TuneD, Google's agents, NetworkManager,
cloud-init): one finding naming them. Who owns which setting is the judge's (guestcheck/judge/owners.py); the
runner names those owners in each finding about such a setting (checks.annotate).
"""

from __future__ import annotations

from typing import List

from guestcheck.checks import FindingDoc
from guestcheck.facts import Facts, OtherAgents
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged

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


def run(facts: Facts, judged: Judged) -> list[Finding]:
    agents = facts.agents
    if agents is None:
        return []
    parts = _summary(agents)
    if not parts:
        return []
    evidence = {"agents": parts, "tuned_sysctl": dict(agents.tuned_sysctl), "notes": list(agents.notes)}
    return [Finding("AGENTS-OTHER-OWNERS", Severity.INFO, "machine", "also managed by: " + "; ".join(parts),
                    evidence, "")]
