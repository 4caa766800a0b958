"""Linux bridges that hold ports back (STP, forward delay) and the VLAN interfaces on the machine."""

from __future__ import annotations

from guestcheck.checks import PRESENT, FindingDoc
from guestcheck.facts import Bridge, Facts
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.text import plain_or, shell_word

# Two commands, in this order: while STP is on the kernel refuses a forward delay below 2 s (ERANGE),
# and it applies forward_delay before stp_state when both come in one `ip link set`.
NOW = "ip link set {br} type bridge stp_state 0 && ip link set {br} type bridge forward_delay 0"
# How to keep it, where the bridge is configured: advice (the finding's hint), never part of the pasted fix.
PERSIST = (
    "to keep it: /etc/network/interfaces (iface {br}): `bridge_stp off` and `bridge_fd 0`; "
    "netplan: bridges: {{{br}: {{parameters: {{stp: false, forward-delay: 0}}}}}}; "
    "NetworkManager: nmcli con mod {br_shell} bridge.stp no bridge.forward-delay 0; "
    "libvirt network: <bridge name='{br}' stp='off' delay='0'/>"
)

FINDINGS = {
    "BRIDGE-STP-ON": FindingDoc(
        "A Linux bridge runs the Spanning Tree Protocol",
        "warning",
        "With STP on, every port that comes up (a VM's tap at boot or migration, an uplink after a flap) "
        "listens and then learns for forward_delay each before it forwards: 2 x 15 s by default, and never "
        "less than 2 x 2 s (the kernel clamps the delay to 2-30 s while STP runs). Guests see a dead link "
        "meanwhile (DHCP and PXE time out), topology changes flush the MAC table, and BPDUs sent to a "
        "switch port with BPDU guard can shut the uplink down. A host bridge with one uplink has no loop "
        "for STP to break. Ports STP holds when it is switched off still sit out their current delay (up to "
        "2 x the old one); they forward nothing anyway, so the fix bounces them (down, up) to release them.",
        NOW.format(br="BR") + "; " + PERSIST.format(br="BR", br_shell="BR"),
        judged_on=PRESENT,
    ),
    "BRIDGE-FORWARD-DELAY": FindingDoc(
        "A bridge keeps a forward delay while STP is off",
        "info",
        "With STP off the kernel forwards on a new port at once and ignores the delay, but the moment STP "
        "is switched on (a config manager, libvirt, mstpd) every port waits 2 x the delay again. Setting it "
        "to 0 makes the bridge's configuration say what it does.",
        "ip link set BR type bridge forward_delay 0; " + PERSIST.format(br="BR", br_shell="BR"),
        judged_on=PRESENT,
    ),
    "VLAN-INTERFACE": FindingDoc(
        "An 802.1Q VLAN interface",
        "info",
        "Listed for the record: the VLAN id and the device it tags frames on. A VLAN device's MTU must fit "
        "in its lower device's (4 bytes of tag), and offloads of the lower device decide what the VLAN gets.",
        "Nothing to fix.",
        judged_on=PRESENT,
        fix_on="",
    ),
}


def _persist_hint(bridge: Bridge) -> str:
    """Commands take the name quoted; config snippets (interfaces, netplan, XML) take it only when it is plain."""
    text = PERSIST.format(br=plain_or(bridge.name, "BR"), br_shell=shell_word(bridge.name))
    return text if plain_or(bridge.name, "") else text + " (BR: this bridge, whose name needs quoting)"


def run(facts: Facts, judged: Judged) -> list[Finding]:
    out = []
    for br in facts.bridges:
        delay = br.forward_delay_s
        evidence = {"stp_state": br.stp_state, "forward_delay_s": delay,
                    "ports": {p.name: p.state for p in br.ports}}
        if br.stp_state in (1, 2):
            kind = "kernel STP" if br.stp_state == 1 else "user-space STP"
            wait = f"each new port waits {2 * delay:g} s before it forwards" if delay else "ports may block"
            held = [p.name for p in br.ports if p.state in ("listening", "learning")]
            now = NOW.format(br=shell_word(br.name)) + "".join(
                f" && ip link set {shell_word(p)} down && ip link set {shell_word(p)} up" for p in held)
            if held:
                wait += f"; held now: {', '.join(held)}"
            out.append(Finding("BRIDGE-STP-ON", Severity.WARNING, br.name,
                               f"{kind} is on: {wait}", evidence, now, hint=_persist_hint(br)))
        elif br.stp_state == 0 and delay:
            out.append(Finding("BRIDGE-FORWARD-DELAY", Severity.INFO, br.name,
                               f"forward delay {delay:g} s (no effect while STP is off; 2 x {delay:g} s if it "
                               "is turned on)", evidence,
                               f"ip link set {shell_word(br.name)} type bridge forward_delay 0",
                               hint=_persist_hint(br)))
    for vlan in facts.vlans:
        vid = vlan.vlan_id if vlan.vlan_id is not None else "?"
        out.append(Finding("VLAN-INTERFACE", Severity.INFO, vlan.name,
                           f"VLAN {vid} on {vlan.lower or '?'}",
                           {"vlan_id": vlan.vlan_id, "lower": vlan.lower, "source": vlan.source}, ""))
    return out
