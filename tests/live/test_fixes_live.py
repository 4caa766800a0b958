"""The fixes doctor prints, run as printed on real kernel objects: each clears its finding.

Each scenario makes the condition inside a network namespace, takes the finding's fix from `doctor --json`,
runs every command of it verbatim with `sh -c` in that namespace in the printed order (a heredoc, which spans
lines, is one command), and runs doctor again: the finding must be gone. A command that writes a persistent
file (a udev rule, a sysctl.d file) runs with a private tmpfs over /etc, so nothing reaches the machine's own
/etc; the file it wrote is checked there.

Every finding id whose fix runs in the guest (guestcheck.checks.guest_fix_ids) has a scenario here, registered
with @covers, or is in NOT_BUILDABLE_HERE with the reason a namespace cannot build it; tests/unit/
test_fix_catalog.py holds the catalog to that, so a finding added later needs one or the other.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Callable

import pytest

from tests.live.nsdoctor import doctor, run_fix
from tests.netns import Netns, guestcheck_in, netns, requires_netns, tbf_limit, veth_pair

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")]

multi_cpu = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 or more CPUs")

# finding id -> the scenario that builds its condition and pastes its fix (declared by @covers, read by the
# catalog meta-test without running anything)
SCENARIOS: dict[str, Callable[[], None]] = {}

_HARDWARE = "hardware only: a network namespace has no PCI devices or hypervisor NICs"
_BACKLOG = ("its command raises net.core.netdev_max_backlog, which is the whole kernel's: a network namespace has "
            "no such sysctl (and backlog drops need real load); pasted in a VM it works")
# finding id -> why no namespace can build its condition or run its fix here
NOT_BUILDABLE_HERE: dict[str, str] = {
    "AZURE-VF-IDLE": f"{_HARDWARE} (Azure's hv_netvsc paired with an SR-IOV VF)",
    "MANA-NO-DRIVER": f"{_HARDWARE} (a MANA PCI function, 1414:00ba, left without its driver)",
    "PCI-NIC-NO-DRIVER": f"{_HARDWARE} (a network PCI function with no driver bound)",
    "ENA-DRIVER-OLD": f"{_HARDWARE} (AWS ENA); and its fix upgrades the kernel and reboots",
    "IRQ-AFFINITY-ONE-CPU": ("needs a multi-queue NIC with interrupt lines of its own (a veth has none); "
                             "/proc/irq is the whole machine's, not a namespace's"),
    "IRQBALANCE-MISSING": ("needs NIC queue interrupts (a veth has none); its fix installs and starts irqbalance "
                           "for the whole machine"),
    "CONNTRACK-TABLE-FULL": ("net.netfilter.nf_conntrack_max is read-only inside a network namespace (it is the "
                             "host's limit), so `sysctl -w` cannot raise it there; pasted in a VM it works"),
    "CONNTRACK-DROPS": ("needs the conntrack table full, and its fix raises net.netfilter.nf_conntrack_max, which "
                        "is read-only inside a network namespace"),
    "NIC-DROPS": _BACKLOG,
    "SOFTIRQ-DROPS": _BACKLOG,
    "SOFTIRQ-SQUEEZE": ("its command raises net.core.netdev_budget and netdev_budget_usecs, the whole kernel's: a "
                        "network namespace has no such sysctls (and running out of budget needs real load)"),
    "RING-RX-DROPS": ("needs a NIC whose receive ring can be resized: veth answers `ethtool -G` with 'Operation "
                      "not supported', and netdevsim is not in this kernel (the QEMU guest test resizes e1000's)"),
    "RING-RX-SMALL": ("needs a NIC whose receive ring can be resized: veth answers `ethtool -G` with 'Operation "
                      "not supported', and netdevsim is not in this kernel"),
    "UDP-RCVBUF-ERRORS": ("its command raises net.core.rmem_default and rmem_max, which this kernel refuses to "
                          "change inside a child network namespace (EINVAL, even for the present value); the "
                          "finding itself is live-tested below, and pasted in a VM the fix works"),
    "UDP-SNDBUF-ERRORS": ("its command raises net.core.wmem_default and wmem_max, which this kernel refuses to "
                          "change inside a child network namespace (EINVAL, even for the present value); the "
                          "finding itself is live-tested below"),
    "TCP-MEMORY-PRESSURE": ("net.ipv4.tcp_mem is the whole kernel's (a network namespace has no such sysctl), and "
                            "pressure needs the machine's TCP memory exhausted; pasted in a VM it works"),
    "FLOW-SNDBUF-LIMITED": ("a send buffer on a veth is defeated by GSO (issue 23: tcp_wmem 4096 ran at 95.6 % of a "
                            "100 Mbit/s tbf, share 0.02), so it needs a real round trip: the Debian guest with "
                            "netem pastes its fix there and sees the finding clear (tests/vm/test_flows_vm.py)"),
    "QUEUES-SINGLE-VIRTIO": ("needs virtio-net on Firecracker (a veth is judged by SOFTIRQ-NO-RPS, whose scenario "
                             "pastes the same fix, `guestcheck tune rps IFACE`); a namespace has no virtio-net and no "
                             "Firecracker verdict"),
}


def covers(*ids: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register the decorated test as the scenario that pastes the fix of each of `ids`."""
    def register(test: Callable[[], None]) -> Callable[[], None]:
        for finding_id in ids:
            assert finding_id not in SCENARIOS, f"{finding_id} has two scenarios"
            SCENARIOS[finding_id] = test
        return test
    return register


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


@covers("OFFLOAD-TSO-OFF", "OFFLOAD-GSO-OFF", "OFFLOAD-RXCSUM-OFF")
def test_offloads_off_on_a_veth():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "tso", "off", "gso", "off", "rx", "off"])
        before = fix_until_gone(a, "gc0", {"OFFLOAD-TSO-OFF", "OFFLOAD-GSO-OFF", "OFFLOAD-RXCSUM-OFF"})
        assert before["OFFLOAD-GSO-OFF"]["fix"] == "ethtool -K gc0 gso on"


@covers("OFFLOAD-TXCSUM-OFF")
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


@covers("OFFLOAD-SG-OFF")
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


@covers("OFFLOAD-GRO-OFF")
def test_macvlan_held_off_by_its_lower_device():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "gro", "on"])
        a.ip("link", "add", "link", "gc0", "name", "gcmv0", "type", "macvlan", "mode", "bridge")
        a.ip("link", "set", "gcmv0", "up")
        a.run(["ethtool", "-K", "gc0", "gro", "off", "gso", "off"])
        before = found(a, "gcmv0")
        # GRO off on a veth is by design, and so for the macvlan it holds GRO off for (issue 19)
        assert "OFFLOAD-GRO-OFF" not in before
        assert before["OFFLOAD-GSO-OFF"]["fix"] == "ethtool -K gc0 gso on"
        fix_until_gone(a, "gcmv0", {"OFFLOAD-GSO-OFF"})
        assert "OFFLOAD-GSO-OFF" not in found(a, "gc0")


def test_macvlan_gro_held_off_by_a_lower_device_that_is_no_veth():
    with netns() as a:
        a.ip("link", "add", "gcd0", "type", "bridge")  # no dummy module on every test kernel
        a.ip("link", "set", "gcd0", "up")
        a.ip("link", "add", "link", "gcd0", "name", "gcmv1", "type", "macvlan", "mode", "bridge")
        a.ip("link", "set", "gcmv1", "up")
        a.run(["ethtool", "-K", "gcd0", "gro", "off"])
        gro = found(a, "gcmv1")["OFFLOAD-GRO-OFF"]
        # the macvlan requests GRO already: the fix is on the lower device, never `ethtool -K gcmv1 gro on`
        assert gro["fix"] == "ethtool -K gcd0 gro on", gro
        assert "held off by its lower device gcd0" in gro["summary"]
        fix_until_gone(a, "gcmv1", {"OFFLOAD-GRO-OFF"})


def _uplink(a: Netns) -> None:
    """gc0 carries the default route: the namespace's own uplink, as a container's eth0."""
    a.ip("route", "add", "default", "via", "10.199.0.2", "dev", "gc0")


@covers("SOFTIRQ-NO-RPS")
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


def multi_queue_uplink(a: Netns, b: Netns, queues: int) -> None:
    """gcq0 in `a` (peer gcq1 in `b`) with `queues` queues each way, up, carrying a's default route."""
    n = str(queues)
    a.ip("link", "add", "gcq0", "numtxqueues", n, "numrxqueues", n, "type", "veth",
         "peer", "name", "gcq1", "numtxqueues", n, "numrxqueues", n, "netns", b.name)
    a.ip("addr", "add", "10.199.1.1/24", "dev", "gcq0")
    a.ip("link", "set", "gcq0", "up")
    b.ip("link", "set", "gcq1", "up")
    a.ip("route", "add", "default", "via", "10.199.1.2", "dev", "gcq0")


@covers("QUEUES-FEWER-THAN-VCPUS")
@multi_cpu
def test_queues_on_a_multi_queue_veth():
    with netns() as a, netns() as b:
        multi_queue_uplink(a, b, 4)
        a.run(["ethtool", "-K", "gcq0", "gro", "on"])  # NAPI mode: the queues are used
        a.run(["ethtool", "-L", "gcq0", "rx", "1", "tx", "1"])
        before = found(a, "gcq0")
        want = min(os.cpu_count() or 1, 4)
        assert before["QUEUES-FEWER-THAN-VCPUS"]["fix"] == f"ethtool -L gcq0 rx {want} tx {want}"
        fix_until_gone(a, "gcq0", {"QUEUES-FEWER-THAN-VCPUS"})


@covers("SOFTIRQ-NO-XPS")
@multi_cpu
def test_xps_on_a_multi_queue_uplink():
    with netns() as a, netns() as b:
        multi_queue_uplink(a, b, 2)
        before = found(a, "gcq0")
        assert before["SOFTIRQ-NO-XPS"]["fix"].splitlines() == [
            "echo 1 > /sys/class/net/gcq0/queues/tx-0/xps_cpus", "echo 2 > /sys/class/net/gcq0/queues/tx-1/xps_cpus"]
        fix_until_gone(a, "gcq0", {"SOFTIRQ-NO-XPS"})


@covers("BRIDGE-STP-ON")
def test_bridge_with_stp_on_and_a_port_held_back():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "add", "gcbr0", "type", "bridge", "stp_state", "1")
        a.ip("link", "set", "gc0", "master", "gcbr0")
        a.ip("link", "set", "gcbr0", "up")
        stp = found(a, "gcbr0")["BRIDGE-STP-ON"]
        # the fix is the commands alone; how to keep it (interfaces, netplan, nmcli) is the hint's
        assert stp["fix"] == ("ip link set gcbr0 type bridge stp_state 0 && ip link set gcbr0 type bridge "
                              "forward_delay 0 && ip link set gc0 down && ip link set gc0 up")
        assert "bridge_stp off" in stp["hint"]
        fix_until_gone(a, "gcbr0", {"BRIDGE-STP-ON"})
        assert "BRIDGE-FORWARD-DELAY" not in found(a, "gcbr0")


@covers("BRIDGE-FORWARD-DELAY")
def test_bridge_keeping_a_forward_delay_with_stp_off():
    with netns() as a:
        a.ip("link", "add", "gcbr1", "type", "bridge")  # the kernel's default: STP off, 15 s delay
        delay = found(a, "gcbr1")["BRIDGE-FORWARD-DELAY"]
        # was `...; to keep it: /etc/network/interfaces (iface gcbr1): ...`: sh said `"(" unexpected`
        assert delay["fix"] == "ip link set gcbr1 type bridge forward_delay 0"
        fix_until_gone(a, "gcbr1", {"BRIDGE-FORWARD-DELAY"})


def doctor_complete(ns: Netns) -> dict:
    """doctor in a PID namespace of its own: NIC-NONE is judged only on complete facts, and a namespace test
    otherwise shares the host's PID 1, whose /proc/1/environ some hosts deny even to root (Firecracker)."""
    out = guestcheck_in(ns, "doctor", "--json", "--sample", "0", wrap=("unshare", "--pid", "--fork", "--mount-proc"))
    assert "Traceback" not in out.stderr, out.stderr
    doc = json.loads(out.stdout)
    assert doc["facts"]["complete"], doc["facts"]["problems"]
    return doc


def operstate(ns: Netns, ifname: str, want: str) -> str:
    """The link's operstate once it is `want`, or what it still is after 5 s (linkwatch sets it a moment after
    `ip link set up`)."""
    for _ in range(50):
        state = ns.run(["cat", f"/sys/class/net/{ifname}/operstate"]).stdout.strip()
        if state == want:
            break
        time.sleep(0.1)
    return state


@covers("NIC-NONE")
def test_the_only_interface_is_down():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "set", "gc0", "down")
        (none,) = [f for f in doctor_complete(a)["findings"] if f["id"] == "NIC-NONE"]
        assert none["fix"] == "ip link set gc0 up"
        run_fix(a, none)
        assert operstate(a, "gc0", "up") == "up"
        assert "NIC-NONE" not in {f["id"] for f in doctor_complete(a)["findings"]}


@covers("PATH-MTU-MISMATCH")
def test_default_route_mtu_above_its_link():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("route", "add", "default", "via", "10.199.0.2", "dev", "gc0", "mtu", "9000")
        mismatch = found(a, "gc0")["PATH-MTU-MISMATCH"]
        assert mismatch["severity"] == "warning"
        assert mismatch["fix"] == "ip route change default via 10.199.0.2 dev gc0 mtu 1500"
        fix_until_gone(a, "gc0", {"PATH-MTU-MISMATCH"})


@covers("TUNNEL-MTU", "VXLAN-TX-CSUM")
def test_vxlan_too_large_for_its_lower_device_with_checksum_offload_on():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "add", "gcvx0", "type", "vxlan", "id", "42", "dev", "gc0", "remote", "10.199.0.2",
             "dstport", "4789")
        a.ip("link", "set", "gcvx0", "up")
        a.ip("link", "set", "gc0", "mtu", "1400")  # the kernel sized the vxlan 1450 and does not follow this
        before = found(a, "gcvx0")
        assert before["TUNNEL-MTU"]["fix"] == "ip link set dev gcvx0 mtu 1350"
        assert before["VXLAN-TX-CSUM"]["fix"].splitlines()[0] == "ethtool -K gcvx0 tx-checksum-ip-generic off"
        fix_until_gone(a, "gcvx0", {"TUNNEL-MTU", "VXLAN-TX-CSUM"})


@covers("TCP-CONGESTION-RENO")
def test_reno_congestion_control_in_a_namespace():
    """net.ipv4.tcp_congestion_control is per network namespace: set to reno in a fresh one, it is that
    namespace's alone. The pasted `sysctl -w` sets CUBIC, or, where the host's default is another control and so
    CUBIC is not in the namespace's read-only tcp_allowed_congestion_control (the kernel says "Operation not
    permitted"), the control that is."""
    with netns() as a:
        a.run(["sysctl", "-w", "net.ipv4.tcp_congestion_control=reno"])
        allowed = a.run(["cat", "/proc/sys/net/ipv4/tcp_allowed_congestion_control"]).stdout.split()
        want = "cubic" if "cubic" in allowed else next(c for c in allowed if c != "reno")
        reno = found(a, "tcp")["TCP-CONGESTION-RENO"]
        assert reno["severity"] == "warning" and reno["evidence"]["control"] == "reno"
        assert reno["fix"] == f"sysctl -w net.ipv4.tcp_congestion_control={want}", reno
        fix_until_gone(a, "tcp", {"TCP-CONGESTION-RENO"})
        assert found(a, "tcp")["TCP-CONGESTION-OK"]["evidence"]["control"] == want
        assert a.run(["sysctl", "-n", "net.ipv4.tcp_congestion_control"]).stdout.strip() == want


# --- The loss ledger (issue 21): each condition is induced while doctor samples, and again after the fix ---

# a non-blocking sender: a full send buffer is EAGAIN (UdpSndbufErrors), skipped, never a wait
UDP_NONBLOCKING = ("import socket, sys\n"
                   "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                   "s.setblocking(False)\n"
                   "for _ in range(int(sys.argv[2])):\n"
                   "    try:\n"
                   "        s.sendto(b'x' * 1000, (sys.argv[1], int(sys.argv[3])))\n"
                   "    except BlockingIOError:\n"
                   "        pass\n")
UDP_BURST = ("import socket, sys\n"
             "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "for _ in range(int(sys.argv[2])):\n"
             "    s.sendto(b'x' * 1000, (sys.argv[1], int(sys.argv[3])))\n")
# a receiver that opens its socket with the namespace's default buffer and reads nothing until told
UDP_SINK = ("import socket, sys, time\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0', int(sys.argv[1])))\n"
            "print('ready', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n")
# a listener whose queue is what listen(1024) gets under the namespace's somaxconn, never accepting
LISTENER = ("import socket, sys, time\n"
            "s = socket.socket()\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('0.0.0.0', int(sys.argv[1])))\n"
            "s.listen(1024)\n"
            "print('ready', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n")
CONNECTS = ("import socket, sys, time\n"
            "held = []\n"
            "for _ in range(int(sys.argv[2])):\n"
            "    c = socket.socket()\n"
            "    c.setblocking(False)\n"
            "    c.connect_ex((sys.argv[1], int(sys.argv[3])))\n"
            "    held.append(c)\n"
            "time.sleep(1.5)\n")


def doctor_during(ns: Netns, induce: Callable[[], None], sample: float = 3.0) -> dict:
    """doctor --json sampling `sample` seconds in `ns` while `induce` runs inside the window."""
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import subprocess
    proc = ns.popen([sys.executable, "-m", "guestcheck", "doctor", "--json", "--sample", str(sample)],
                    env={**os.environ, "PYTHONPATH": repo}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # start-up and the first reading
        induce()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (err or ""), err
    return json.loads(out)


def by_id(doc: dict) -> dict:
    return {f["id"]: f for f in doc["findings"]}


def background(ns: Netns, code: str, *args: str):
    """A Python snippet running in `ns`, once it printed 'ready'."""
    import subprocess
    proc = ns.popen(["python3", "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@covers("QDISC-DROPS")
def test_a_tbf_with_a_tiny_limit_drops_a_burst_until_its_limit_is_raised():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["tc", "qdisc", "add", "dev", "gc0", "root", "tbf", "rate", "10mbit", "burst", "10kb", "limit", "3000"])
        def burst() -> None:
            a.run(["python3", "-c", UDP_BURST, "10.199.0.2", "20", "9"])
        drops = by_id(doctor_during(a, burst))["QDISC-DROPS"]
        assert drops["severity"] == "warning" and drops["subject"] == "gc0", drops
        assert drops["evidence"]["drops_rise"] > 0
        run_fix(a, drops)
        after = by_id(doctor_during(a, burst)).get("QDISC-DROPS")
        assert after is None or (after["severity"] == "info" and after["evidence"]["drops_rise"] == 0), after


def test_a_udp_burst_overflows_the_default_receive_buffer():
    with netns() as a, netns() as b, veth_pair(a, b):
        def burst() -> None:
            sink = background(b, UDP_SINK, "5001", "4")
            try:
                a.run(["python3", "-c", UDP_BURST, "10.199.0.2", "300", "5001"])
                time.sleep(0.3)
            finally:
                sink.kill()
                sink.wait()
        errors = by_id(doctor_during(b, burst))["UDP-RCVBUF-ERRORS"]
        assert errors["severity"] == "warning" and errors["evidence"]["rising"]["UdpRcvbufErrors"]["rise"] > 0
        assert errors["fix"].startswith("sysctl -w net.core.rmem_max=")


@covers("TCP-LISTEN-OVERFLOW")
def test_a_listen_queue_capped_by_somaxconn_overflows_until_the_profile_raises_it():
    with netns() as a, netns() as b, veth_pair(a, b):
        b.run(["sysctl", "-qw", "net.core.somaxconn=4"])
        servers: list = []
        def flood() -> None:
            servers.append(background(b, LISTENER, "8080", "6"))  # alive past the window's last reading
            a.run(["python3", "-c", CONNECTS, "10.199.0.2", "40", "8080"])
        try:
            overflow = by_id(doctor_during(b, flood))["TCP-LISTEN-OVERFLOW"]
            assert overflow["severity"] == "warning", overflow
            assert "0.0.0.0:8080" in overflow["summary"] and "limit 4" in overflow["summary"]
            for server in servers:
                server.kill()
                server.wait()
            run_fix(b, overflow)
            assert b.run(["sysctl", "-n", "net.core.somaxconn"]).stdout.strip() == "8192"
            assert "TCP-LISTEN-OVERFLOW" not in by_id(doctor_during(b, flood))
        finally:
            for server in servers:
                server.kill()
                server.wait()


@covers("IP-RPFILTER-DROPS")
def test_strict_reverse_path_filtering_drops_an_asymmetric_source_until_it_is_loose():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("addr", "add", "10.55.0.1/32", "dev", "gc0")
        a.run(["sysctl", "-qw", "net.ipv4.conf.gc0.arp_announce=2"])  # ARP asks from 10.199.0.1, which b routes
        b.ip("link", "add", "gcd0", "type", "veth", "peer", "name", "gcd1")  # this kernel has no dummy
        b.ip("link", "set", "gcd0", "up")
        b.ip("link", "set", "gcd1", "up")
        b.ip("route", "add", "10.55.0.0/24", "dev", "gcd0")  # the way back to the source is another interface
        b.run(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"])
        send = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "s.bind(('10.55.0.1', 0))\nfor _ in range(200):\n    s.sendto(b'x', ('10.199.0.2', 9))\n")
        def asymmetric() -> None:
            a.run(["python3", "-c", send])
        drops = by_id(doctor_during(b, asymmetric))["IP-RPFILTER-DROPS"]
        assert drops["evidence"]["rise"] >= 200 and "strict on all" in drops["summary"], drops
        run_fix(b, drops)
        assert "IP-RPFILTER-DROPS" not in by_id(doctor_during(b, asymmetric))


def test_a_non_blocking_burst_behind_a_slow_queue_fills_the_send_buffer():
    with netns() as a, netns() as b, veth_pair(a, b):
        # a long queue that drops nothing: the datagrams wait in it, charged to the sender's buffer
        a.run(["tc", "qdisc", "add", "dev", "gc0", "root", "tbf", "rate", "1mbit", "burst", "10kb", "limit", "10mb"])
        def burst() -> None:
            a.run(["python3", "-c", UDP_NONBLOCKING, "10.199.0.2", "400", "9"])
        errors = by_id(doctor_during(a, burst))["UDP-SNDBUF-ERRORS"]
        assert errors["evidence"]["rising"]["UdpSndbufErrors"]["rise"] > 0, errors
        assert errors["fix"].startswith("sysctl -w net.core.wmem_max=")  # no queue dropped: the buffer is full


def test_a_shaper_on_the_default_route_is_info_idle_and_a_warning_while_it_limits():
    """QDISC-SHAPED has no command to paste (a shaper is usually deliberate): the finding itself, live."""
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("route", "add", "default", "via", "10.199.0.2")
        a.run(["tc", "qdisc", "add", "dev", "gc0", "root", "tbf", "rate", "10mbit", "burst", "10kb", "limit",
               "1mb"])
        idle = by_id(doctor_during(a, lambda: None, sample=1.0))["QDISC-SHAPED"]
        assert idle["severity"] == "info" and "shapes to 10.0 Mbit/s" in idle["summary"] and not idle["fix"], idle

        def load() -> None:  # 4 MB into a 10 Mbit/s shaper with a 1 MB queue: it limits and queues
            a.run(["python3", "-c", UDP_BURST, "10.199.0.2", "4000", "9"])
        busy = by_id(doctor_during(a, load, sample=2.0))["QDISC-SHAPED"]
        assert busy["severity"] == "warning" and busy["evidence"]["overlimits_rise"] > 0, busy
        assert busy["evidence"]["backlog_bytes_peak"] > 0 and busy["evidence"]["queue_delay_ms"] > 0


def _flow_transfer(a: Netns, b: Netns) -> tuple:
    """(doctor's FLOW-* findings in b, b's flows doc) while a sends to b's iperf3 for 8 s."""
    import subprocess
    client = a.popen(["iperf3", "-c", "10.199.0.2", "-t", "8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        doc = guestcheck_in(b, "doctor", "--json", "--only", "FLOW-*", "--sample", "2")
        flows = guestcheck_in(b, "flows", "--json", "--sample", "2")
    finally:
        client.kill()
        client.wait()
    assert "Traceback" not in doc.stderr + flows.stderr, doc.stderr + flows.stderr
    return by_id(json.loads(doc.stdout)), json.loads(flows.stdout)


@covers("FLOW-RWND-LIMITED")
@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")
def test_a_tiny_receive_buffer_behind_a_shaper_until_the_sized_profile_raises_it():
    """The receiver's tcp_rmem 4096 behind a 1 Gbit/s tbf: doctor on the receiver gives FLOW-RWND-LIMITED with
    `guestcheck tune apply wan --rate 1G --rtt T`; pasted (private /etc and /var/lib, the sysctl written to this
    namespace's kernel: tcp_rmem is per network namespace), a new transfer runs near the path, the finding gone."""
    with netns("gcfx") as a, netns("gcfx") as b, veth_pair(a, b):
        a.ip("route", "add", "default", "via", "10.199.0.2")
        b.ip("route", "add", "default", "via", "10.199.0.1")
        tbf_limit(a, "gc0", "1gbit")
        tbf_limit(b, "gc1", "1gbit")
        b.run(["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 4096 4096"])
        import subprocess
        server = b.popen(["iperf3", "-s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            before, _ = _flow_transfer(a, b)
            finding = before["FLOW-RWND-LIMITED"]
            assert finding["fix"].startswith("guestcheck tune apply wan --rate 1G --rtt "), finding
            # sized to min_rtt plus the ~20 ms tbf's queue can add under load (tbf_limit's latency bound)
            assert float(finding["fix"].rsplit(" ", 1)[1].rstrip("ms")) >= 20, finding["fix"]
            with open("/proc/sys/net/ipv4/tcp_rmem") as f:
                host = f.read()
            run_fix(b, finding)
            rmem = b.run(["sysctl", "-n", "net.ipv4.tcp_rmem"]).stdout.split()
            assert int(rmem[2]) >= 5_000_000, rmem  # 2 x BDP of 1 Gbit/s x 20 ms, in this namespace's kernel
            with open("/proc/sys/net/ipv4/tcp_rmem") as f:
                assert f.read() == host  # the machine's own is untouched
            after, flows = _flow_transfer(a, b)
            assert "FLOW-RWND-LIMITED" not in after, after
            flow = flows["flows"][0]
            assert flow["limited_by"] == "none" and flow["rate_bps"] >= 0.8e9, flow
        finally:
            server.kill()
            server.wait()
