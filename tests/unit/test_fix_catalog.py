"""Every fix doctor labels `fix_on: guest` runs when pasted, and every finding id that can carry one has a live test.

The catalog meta-test: each id of guestcheck.checks.guest_fix_ids() has a scenario in
tests/live/test_fixes_live.py (SCENARIOS, filled by @covers: it builds the condition in a network namespace and
pastes the fix with `sh -c`) or a reason in its NOT_BUILDABLE_HERE, never both; a finding added later fails here
until it has one. The registry is read, not run, so this holds in the normal suite without root.

The rest runs every check over a corpus of broken machines and holds each guest fix to what a shell runs as it
is: POSIX sh syntax (dash, Debian's sh), a real command at the head of every command, no placeholder such as
GATEWAY or IFACE; advice that is not a command is in `hint`. Besides its own machines, the corpus takes those each
check's unit test offers (`fix_catalog_machines()` in tests/unit/test_<check>.py), so a new check adds to it there.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.util
import json
import re
import shlex
import subprocess
from typing import Iterator

import pytest

from guestcheck.checks import catalog, guest_fix_ids, modules
from guestcheck.doctor import build_report
from guestcheck.facts import (
    Balloon,
    Bridge,
    BridgePort,
    Conntrack,
    CounterRate,
    Facts,
    Feature,
    Memory,
    Nic,
    NicCounters,
    Path,
    PciFunction,
    Rings,
    Route,
    Tunnel,
)
from guestcheck.findings import Finding
from guestcheck.render.human import render
from guestcheck.render.json import dumps
from tests.live.nsdoctor import commands
from tests.live.test_fixes_live import NOT_BUILDABLE_HERE, SCENARIOS
from tests.unit.test_checks_fixes import hostile_facts
from tests.unit.test_ok_states import CASES, base, eth0

GiB = 1 << 30

# What a guest fix may run: the tools the checks name (a new one is added here on purpose, not by accident).
COMMANDS = {"ip", "ethtool", "echo", "cat", "sysctl", "modprobe", "lspci", "dmesg", "grep", "systemctl",
            "apt-get", "dnf", "zypper", "apk", "pacman", "yum", "rc-update", "rc-service", "reboot",
            "guestcheck", "tc"}  # guestcheck tune rps: the tuner journals, persists and rolls back; tc: qdiscs
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")  # GATEWAY, IFACE, MASK, N, BR, CPU, MAX ...
SEPARATORS = {"&&", "||", "|", ";"}


def _broken(change) -> Facts:
    facts = base()
    change(facts)
    return facts


def _counters(nic: str, **rising: int) -> NicCounters:
    return NicCounters(nic, sampled=True, seconds=1.0,
                       interface={k: CounterRate(total=v, rise=v, per_s=float(v)) for k, v in rising.items()})


def _everything_else(f: Facts) -> None:
    """One machine with what CASES leaves out: bridges, conntrack, tunnels, memory, no route, PCI functions."""
    f.host.kernel, f.host.os, f.host.os_id = "5.4.0-100-generic", "Debian GNU/Linux 12 (bookworm)", "debian"
    f.bridges = [Bridge("br0", 1, 15.0, [BridgePort("tap0", "listening")]), Bridge("br1", 0, 15.0)]
    f.conntrack = Conntrack(loaded=True, count=900, max=1024, in_sample={"drop": 3})
    f.nics.append(Nic("vx0", kind="software", software_type="vxlan", operstate="up", admin_up=True,
                      features={"tx-checksum-ip-generic": Feature(True, False, True)}))
    f.tunnels = [Tunnel("vx0", "vxlan", mtu=1500, overhead=50, lower="eth0", lower_mtu=1500, family="ipv4")]
    f.memory = Memory(total_bytes=8 * GiB, swap_total_bytes=0, committed_bytes=20 * GiB, commit_limit_bytes=4 * GiB,
                      overcommit_memory=0, cgroup_limit_bytes=GiB, cgroup_usage_bytes=GiB // 2,
                      balloons=[Balloon("virtio-balloon", True, "virtio0", inflated_bytes=0)])
    f.path = Path(routes=[])
    f.pci_network = [PciFunction("0000:00:05.0", "0x020000", "1414:00ba"),
                     PciFunction("0000:00:06.0", "0x020000", "8086:10ed"),
                     PciFunction("0000:00:07.0", "0x020000", "abcd:0001")]


def _ena(os_name: str, os_id: str):
    def change(f: Facts) -> None:
        f.host.kernel, f.host.os, f.host.os_id = "6.1.0-18-cloud-amd64", os_name, os_id
        f.nics.append(Nic("ens5", driver="ena", driver_sysfs="ena", driver_version="2.2.9g", bus="pci",
                          pci_id="1d0f:ec20", has_device=True, operstate="up", admin_up=True, carrier=True,
                          link_type=1, driver_stats={"queue_0_tx_cnt": 1}))
    return change


def _azure_vf_idle(f: Facts) -> None:
    n = eth0(f)
    n.driver = n.driver_sysfs = "hv_netvsc"
    n.bus, n.lowers = "vmbus", ["enP1s1"]
    n.driver_stats = {"vf_rx_packets": 0, "vf_tx_packets": 0, "rx_queue_0_packets": 5000}
    f.nics.append(Nic("enP1s1", driver="mlx5_core", driver_sysfs="mlx5_core", bus="pci", pci_id="15b3:1016",
                      has_device=True, master="eth0", operstate="down", admin_up=False, link_type=1))


def _small_ring(f: Facts) -> None:
    eth0(f).rings = Rings(rx_max=4096, tx_max=4096, rx=256, tx=256)


def _ring_overflow(f: Facts) -> None:
    _small_ring(f)
    f.nic_counters = [_counters("eth0", rx_missed_errors=40)]


def _backlog_drops(f: Facts) -> None:
    f.nic_counters = [_counters("eth0", rx_dropped=40)]
    f.softirq.cpus[0].dropped, f.softirq.cpus[0].dropped_per_s = 40, 40.0


def _down(f: Facts) -> None:
    eth0(f).operstate, eth0(f).admin_up = "down", False


def contributed() -> Iterator[tuple[str, Facts]]:
    """The machines each check's own unit test offers (tests/unit/test_<check>.py: `fix_catalog_machines()`), so a
    new check reaches this corpus from its own test, with no list here naming it."""
    for module in modules():
        area = module.__name__.rsplit(".", 1)[1]
        if importlib.util.find_spec(f"tests.unit.test_{area}") is None:
            continue
        machines = getattr(importlib.import_module(f"tests.unit.test_{area}"), "fix_catalog_machines", None)
        for label, facts in machines() if machines else ():
            yield f"{area}: {label}", facts


def corpus() -> Iterator[tuple[str, Facts]]:
    yield from contributed()
    for finding_id, (make, _) in sorted(CASES.items()):
        yield finding_id, _broken(make)
    for name in ("eth0", "br0", "eth0;curl x|sh;#", "e'$(curl x|sh)'"):
        for hypervisor in ("kvm", "firecracker"):
            yield f"hostile {name!r} on {hypervisor}", hostile_facts(name, hypervisor)
    for label, change in [("everything else", _everything_else), ("ENA on Debian", _ena("Debian GNU/Linux 12",
                                                                                         "debian")),
                          ("ENA on Arch", _ena("Arch Linux", "arch")), ("Azure VF idle", _azure_vf_idle),
                          ("small ring", _small_ring), ("ring overflow", _ring_overflow),
                          ("backlog drops", _backlog_drops), ("interface down", _down)]:
        yield label, _broken(change)


CORPUS = list(corpus())


def judged() -> Iterator[tuple[str, Finding]]:
    for label, facts in CORPUS:
        for finding in build_report(copy.deepcopy(facts)).findings:
            yield label, finding


FINDINGS = list(judged())


def _command_heads(command: str) -> Iterator[list[str]]:
    """The words of each simple command in one pasted command (a heredoc's body is data, not commands)."""
    first_line = command.split("\n", 1)[0].split("<<", 1)[0]  # cat > FILE <<'EOF': its marker is no word
    lexer = shlex.shlex(first_line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for token in lexer:
        if token in SEPARATORS:
            yield words
            words = []
        else:
            words.append(token)
    yield words


@pytest.mark.parametrize("label,finding", [(label, f) for label, f in FINDINGS if f.fix_on == "guest"],
                         ids=lambda v: v if isinstance(v, str) else v.id)
def test_every_guest_fix_is_posix_sh_with_real_commands_and_no_placeholders(label, finding):
    syntax = subprocess.run(["sh", "-n", "-c", finding.fix], capture_output=True, text=True)
    assert syntax.returncode == 0, (finding.id, finding.fix, syntax.stderr)  # BRIDGE-*: `"(" unexpected`
    for command in commands(finding.fix):
        for words in _command_heads(command):
            assert words and words[0] in COMMANDS, (finding.id, command)  # prose: MEM-GUARANTEED's "Nothing..."
            assert not [w for w in words if PLACEHOLDER.match(w)], (finding.id, command)  # PATH-...-ROUTE's GATEWAY


def test_the_corpus_reaches_the_guest_fixes_it_audits():
    """Every guest-fix id the checks can raise from facts is in the corpus (none is audited by luck)."""
    reached = {f.id for _, f in FINDINGS if f.fix_on == "guest"}
    assert guest_fix_ids() - reached == set(), sorted(guest_fix_ids() - reached)


def test_the_catalog_says_where_each_fix_runs():
    docs = catalog()
    for label, f in FINDINGS:
        doc = docs[f.id]
        if not f.fix:
            assert f.fix_on == "", (label, f.id)
            continue
        assert doc.fix_on, (label, f.id, "the catalog says it never carries a command")
        assert f.fix_on == doc.fix_on or (f.fix_on == "guest" and doc.guest_fix_too), (label, f.id, f.fix_on)


@pytest.mark.parametrize("finding_id,label", [
    ("PATH-NO-DEFAULT-ROUTE", "everything else"),  # was `ip route add default via GATEWAY dev IFACE; ...`
    ("MEM-GUARANTEED", "everything else"),  # was "Nothing to fix by itself: ..."
    ("MEM-CGROUP-LIMIT", "everything else"),
    ("MEM-OVERCOMMIT", "everything else"),
    ("NIC-UNKNOWN", "NIC-UNKNOWN"),  # was `guestcheck facts --json > ...  (and report the file, ...)`
    ("OFFLOAD-UNKNOWN", "OFFLOAD-UNKNOWN"),  # looking is not fixing
    ("ENA-DRIVER-OLD", "ENA on Arch"),  # was `# install the ena driver ...` and then `reboot`
])
def test_advice_where_no_command_can_be_given_is_a_hint(finding_id, label):
    (f,) = [f for lab, f in FINDINGS if lab == label and f.id == finding_id]
    assert (f.fix, f.fix_on) == ("", "") and f.hint, f


def test_a_bridge_fix_is_the_commands_and_keeping_it_is_the_hint():
    found = {f.id: f for lab, f in FINDINGS if lab == "everything else" and f.id.startswith("BRIDGE-")}
    assert found["BRIDGE-FORWARD-DELAY"].fix == "ip link set br1 type bridge forward_delay 0"
    assert "bridge_fd 0" in found["BRIDGE-FORWARD-DELAY"].hint and "bridge_fd" not in found["BRIDGE-STP-ON"].fix


def test_a_failed_check_asks_for_a_report_in_its_hint(monkeypatch):
    from guestcheck.checks import virt

    def broken(facts):
        raise RuntimeError("boom")

    monkeypatch.setattr(virt, "run", broken)
    (failed,) = [f for f in build_report(base()).findings if f.id == "CHECK-FAILED"]
    assert (failed.fix, failed.fix_on) == ("", "") and "guestcheck facts --json" in failed.hint


def test_the_hint_is_in_the_json_and_on_its_own_line_in_the_human_report():
    facts = base()
    _everything_else(facts)
    report = build_report(facts)
    (route,) = [f for f in json.loads(dumps(report.to_dict()))["findings"] if f["id"] == "PATH-NO-DEFAULT-ROUTE"]
    assert route["fix"] == "" and route["fix_on"] == "" and route["hint"].startswith("Add a default route")
    text = render(report)
    assert "           hint: Add a default route via your network's gateway" in text
    assert "GATEWAY" not in "\n".join(line for line in text.splitlines() if "hint:" not in line)
    plain = dataclasses.replace(report, findings=[dataclasses.replace(f, hint="") for f in report.findings])
    assert "hint:" not in render(plain)


def test_every_guest_fix_id_has_a_live_scenario_or_a_reason_it_cannot_have_one():
    ids = guest_fix_ids()
    assert not set(SCENARIOS) & set(NOT_BUILDABLE_HERE), "listed as not buildable, yet covered"
    missing = ids - set(SCENARIOS) - set(NOT_BUILDABLE_HERE)
    assert not missing, f"give these a scenario in tests/live/test_fixes_live.py, or a reason: {sorted(missing)}"
    stale = (set(SCENARIOS) | set(NOT_BUILDABLE_HERE)) - ids
    assert not stale, f"not guest-fix ids (any more): {sorted(stale)}"
    assert all(len(reason) > 20 for reason in NOT_BUILDABLE_HERE.values())
    assert all(callable(test) and test.__name__.startswith("test_") for test in SCENARIOS.values())


def test_a_route_mtu_fix_without_a_device_is_advice_not_a_placeholder():
    facts = base()
    facts.path = Path(routes=[Route("ipv4", dev=None, gateway="10.0.0.1", mtu=9000, dev_mtu=1500)])
    (f,) = [f for f in build_report(facts).findings if f.id == "PATH-MTU-MISMATCH"]
    assert (f.fix, f.fix_on) == ("", "") and f.hint.startswith("ip route change default via 10.0.0.1 dev IFACE")
