"""Bridges and VLANs on fake trees: sysfs bridge attributes, /proc/net/vlan/config, and the checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from guestcheck.checks import bridge as check
from guestcheck.collect.bridges import collect_bridges
from guestcheck.collect.vlans import collect_vlans, parse_vlan_config
from guestcheck.facts import Bridge, BridgePort, Facts, Vlan, facts_from_dict
from tests.fakemachine import FakeMachine
from tests.judged import with_recorded

# As net/8021q/vlanproc.c prints it: "%-15s| %d  | %s\n" after two header lines.
VLAN_CONFIG = (
    "VLAN Dev name\t | VLAN ID\n"
    "Name-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\n"
    "ens3.100       | 100  | ens3\n"
    "vlan42         | 42  | bond0\n"
)


def add_bridge(m: FakeMachine, name: str, stp: int, forward_delay: int, ports: dict[str, int]) -> None:
    """A bridge as sysfs shows it: bridge/ attributes in USER_HZ ticks, brif/PORT/state numbers."""
    m.add_nic(name, bus=None, marker="bridge")
    m.write(f"sys/class/net/{name}/bridge/stp_state", f"{stp}\n")
    m.write(f"sys/class/net/{name}/bridge/forward_delay", f"{forward_delay}\n")
    for port, state in ports.items():
        m.write(f"sys/class/net/{name}/brif/{port}/state", f"{state}\n")


def test_bridges_from_sysfs(tmp_path: Path) -> None:
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="virtio_net", bus="virtio")
    add_bridge(m, "br0", 1, 1500, {"eth0": 3, "tap0": 1})
    add_bridge(m, "virbr0", 0, 200, {})
    br0, virbr0 = collect_bridges(m.roots)
    assert (br0.name, br0.stp_state, br0.forward_delay_s) == ("br0", 1, 15.0)  # 1500 centiseconds
    assert br0.ports == [BridgePort("eth0", "forwarding"), BridgePort("tap0", "listening")]
    assert (virbr0.stp_state, virbr0.forward_delay_s, virbr0.ports) == (0, 2.0, [])


def test_vlans_from_proc_and_from_sysfs_without_8021q_config(tmp_path: Path) -> None:
    assert parse_vlan_config(VLAN_CONFIG) == [Vlan("ens3.100", 100, "ens3"), Vlan("vlan42", 42, "bond0")]
    m = FakeMachine(tmp_path)
    m.add_nic("ens3", driver="virtio_net", bus="virtio")
    m.add_nic("ens3.200", bus=None, uevent_devtype="vlan")
    m.symlink("sys/class/net/ens3.200/lower_ens3", str(tmp_path / "sys/class/net/ens3"))
    assert collect_vlans(m.roots) == [Vlan("ens3.200", None, "ens3", "sysfs")]
    m.write("proc/net/vlan/config", VLAN_CONFIG.replace("ens3.100       | 100", "ens3.200       | 200"))
    assert collect_vlans(m.roots) == [Vlan("ens3.200", 200, "ens3"), Vlan("vlan42", 42, "bond0")]


def test_collect_facts_fills_bridges_and_vlans_and_they_round_trip(tmp_path: Path) -> None:
    m = FakeMachine(tmp_path)
    add_bridge(m, "br0", 1, 1500, {"eth0": 1})
    m.write("proc/net/vlan/config", VLAN_CONFIG)
    facts = m.collect()
    assert [b.name for b in facts.bridges] == ["br0"] and [v.vlan_id for v in facts.vlans] == [100, 42]
    again = facts_from_dict(json.loads(json.dumps(facts.to_dict())))
    assert (again.bridges, again.vlans) == (facts.bridges, facts.vlans)


# --- checks -------------------------------------------------------------------------------------------


def judged(*bridges: Bridge, vlans: Optional[list[Vlan]] = None) -> list:
    return check.run(*with_recorded(Facts(bridges=list(bridges), vlans=vlans or [])))


def test_stp_on_warns_with_every_fix() -> None:
    (f,) = judged(Bridge("br0", 1, 15.0, [BridgePort("tap0", "listening")]))
    assert (f.id, f.severity.label, f.subject) == ("BRIDGE-STP-ON", "warning", "br0")
    assert "30 s" in f.summary and f.evidence["ports"] == {"tap0": "listening"}
    # stp first, then the delay: the kernel refuses forward_delay 0 while STP is on
    assert f.fix == ("ip link set br0 type bridge stp_state 0 && ip link set br0 type bridge forward_delay 0"
                     " && ip link set tap0 down && ip link set tap0 up")  # a held port sits out its delay
    # how to keep it is advice for the bridge's configuration, in the hint: the fix is only what runs
    for persistent in ("bridge_stp off", "bridge_fd 0", "parameters: {stp: false, forward-delay: 0}",
                       "nmcli con mod br0 bridge.stp no bridge.forward-delay 0"):
        assert persistent in f.hint and persistent not in f.fix
    assert judged(Bridge("br0", 2, 2.0))[0].summary.startswith("user-space STP")


def test_forward_delay_with_stp_off_is_info_and_zero_is_clean() -> None:
    (f,) = judged(Bridge("br0", 0, 15.0))
    assert (f.id, f.severity.label) == ("BRIDGE-FORWARD-DELAY", "info")
    assert f.fix == "ip link set br0 type bridge forward_delay 0"  # sh -c runs it: no prose, no "(iface br0)"
    assert f.hint.startswith("to keep it: /etc/network/interfaces (iface br0)")
    assert judged(Bridge("br0", 0, 0.0)) == []
    assert judged(Bridge("br0", None, None)) == []


def test_vlans_listed_with_id_and_lower_device() -> None:
    found = judged(vlans=[Vlan("ens3.100", 100, "ens3"), Vlan("x", None, None, "sysfs")])
    assert [(f.id, f.severity.label, f.subject, f.summary) for f in found] == [
        ("VLAN-INTERFACE", "info", "ens3.100", "VLAN 100 on ens3"),
        ("VLAN-INTERFACE", "info", "x", "VLAN ? on ?"),
    ]
