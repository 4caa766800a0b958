"""The fixes doctor prints, run as printed on real kernel objects: each clears its finding.

Each scenario makes the condition inside a network namespace, takes the finding's fix from `doctor --json`,
runs every command of it verbatim with `sh -c` in that namespace in the printed order (a heredoc, which spans
lines, is one command), and runs doctor again: the finding must be gone. A command that writes a persistent
file (a udev rule, a sysctl.d file) runs with a private tmpfs over /etc, so nothing reaches the machine's own
/etc; the file it wrote is checked there.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.live.nsdoctor import doctor, run_fix
from tests.netns import Netns, netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")]

multi_cpu = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 or more CPUs")

def found(ns: Netns, subject: str) -> dict:
    return {f["id"]: f for f in doctor(ns)["findings"] if f["subject"] == subject}


def fix_until_gone(ns: Netns, subject: str, ids: set[str]) -> dict:
    """Run the fixes of `ids` on `subject` in the order doctor prints them; afterwards none of them is left."""
    before = found(ns, subject)
    assert ids <= set(before), before
    printed = [f for f in doctor(ns)["findings"] if f["subject"] == subject and f["id"] in ids]
    for finding in printed:
        run_fix(ns, finding)
    after = found(ns, subject)
    assert not ids & set(after), after
    return before


def test_offloads_off_on_a_veth():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "tso", "off", "gso", "off", "rx", "off"])
        before = fix_until_gone(a, "gc0", {"OFFLOAD-TSO-OFF", "OFFLOAD-GSO-OFF", "OFFLOAD-RXCSUM-OFF"})
        assert before["OFFLOAD-GSO-OFF"]["fix"] == "ethtool -K gc0 gso on"


def test_tx_checksum_off_deactivates_tso_and_the_fix_turns_tx_on_first():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "tx", "off"])
        before = found(a, "gc0")
        tso = before["OFFLOAD-TSO-OFF"]
        # TSO is still requested on: `ethtool -K gc0 tso on` would change nothing; the cause is TX checksumming
        assert tso["fix"] == "ethtool -K gc0 tx on", tso
        assert any("needs tx-checksum-ip-generic" in r for r in tso["evidence"]["reasons"])
        assert tso["evidence"]["tx-tcp-segmentation"] == "off [requested on]"
        fix_until_gone(a, "gc0", {"OFFLOAD-TSO-OFF", "OFFLOAD-TXCSUM-OFF"})


def test_sg_off_the_fixes_put_sg_first():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "sg", "off"])
        before = found(a, "gc0")
        assert before["OFFLOAD-GSO-OFF"]["fix"].splitlines()[0] == "ethtool -K gc0 sg on"
        fix_until_gone(a, "gc0", {"OFFLOAD-SG-OFF", "OFFLOAD-GSO-OFF", "OFFLOAD-TSO-OFF"})


def test_sg_and_gso_both_off_by_request():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "sg", "off"])
        a.run(["ethtool", "-K", "gc0", "gso", "off", "tso", "off"], check=False)  # not requested any more
        before = found(a, "gc0")
        assert before["OFFLOAD-GSO-OFF"]["fix"].splitlines() == ["ethtool -K gc0 sg on", "ethtool -K gc0 gso on"]
        fix_until_gone(a, "gc0", {"OFFLOAD-SG-OFF", "OFFLOAD-GSO-OFF", "OFFLOAD-TSO-OFF"})


def test_macvlan_held_off_by_its_lower_device():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "gro", "on"])
        a.ip("link", "add", "link", "gc0", "name", "gcmv0", "type", "macvlan", "mode", "bridge")
        a.ip("link", "set", "gcmv0", "up")
        a.run(["ethtool", "-K", "gc0", "gro", "off", "gso", "off"])
        before = found(a, "gcmv0")
        gro = before["OFFLOAD-GRO-OFF"]
        # the macvlan requests GRO already: the fix is on the lower device, never `ethtool -K gcmv0 gro on`
        assert gro["fix"] == "ethtool -K gc0 gro on", gro
        assert "held off by its lower device gc0" in gro["summary"]
        assert before["OFFLOAD-GSO-OFF"]["fix"] == "ethtool -K gc0 gso on"
        fix_until_gone(a, "gcmv0", {"OFFLOAD-GRO-OFF", "OFFLOAD-GSO-OFF"})
        assert "OFFLOAD-GSO-OFF" not in found(a, "gc0")


def _uplink(a: Netns) -> None:
    """gc0 carries the default route: the namespace's own uplink, as a container's eth0."""
    a.ip("route", "add", "default", "via", "10.199.0.2", "dev", "gc0")


@multi_cpu
def test_rps_on_a_single_queue_uplink():
    """SOFTIRQ-NO-RPS (and QUEUES-SINGLE-VIRTIO on Firecracker, the same fix): `guestcheck tune rps IFACE`, pasted
    with this checkout's guestcheck on PATH; the rule and journal land in a private tmpfs /etc and /var/lib."""
    with netns() as a, netns() as b, veth_pair(a, b):
        _uplink(a)
        before = found(a, "gc0")
        rps = before["SOFTIRQ-NO-RPS"]
        mask = format((1 << (os.cpu_count() or 1)) - 1, "x")
        assert rps["fix"] == "guestcheck tune rps gc0"
        assert rps["hint"].startswith(f"without guestcheck's tuner: echo {mask} > /sys/class/net/gc0/queues/rx-0/"
                                      "rps_cpus ")
        written = run_fix(a, rps)
        assert any("== /etc/udev/rules.d/90-guestcheck-gc0.rules" in w
                   and "ATTR{queues/rx-0/rps_cpus}=\"" + mask + "\"" in w for w in written), written
        assert any("== /var/lib/guestcheck/tune-state.json" in w for w in written), written  # journaled
        assert "SOFTIRQ-NO-RPS" not in found(a, "gc0")
        assert a.run(["cat", "/sys/class/net/gc0/queues/rx-0/rps_cpus"]).stdout.strip().lstrip("0,") == mask


@multi_cpu
def test_queues_on_a_multi_queue_veth():
    with netns() as a, netns() as b:
        a.ip("link", "add", "gcq0", "numtxqueues", "4", "numrxqueues", "4", "type", "veth",
             "peer", "name", "gcq1", "numtxqueues", "4", "numrxqueues", "4", "netns", b.name)
        a.ip("addr", "add", "10.199.1.1/24", "dev", "gcq0")
        a.ip("link", "set", "gcq0", "up")
        b.ip("link", "set", "gcq1", "up")
        a.ip("route", "add", "default", "via", "10.199.1.2", "dev", "gcq0")
        a.run(["ethtool", "-K", "gcq0", "gro", "on"])  # NAPI mode: the queues are used
        a.run(["ethtool", "-L", "gcq0", "rx", "1", "tx", "1"])
        before = found(a, "gcq0")
        want = min(os.cpu_count() or 1, 4)
        assert before["QUEUES-FEWER-THAN-VCPUS"]["fix"] == f"ethtool -L gcq0 rx {want} tx {want}"
        fix_until_gone(a, "gcq0", {"QUEUES-FEWER-THAN-VCPUS"})
