"""One Debian 12 guest (its kernel has 8021q, this machine's has not): a VLAN interface is listed with its
id and lower device, QEMU's user-mode network is recognised, and the virtio-net queue interrupts are found."""

from __future__ import annotations

import json
import re

import pytest

from . import guest

pytestmark = pytest.mark.vm

COMMAND = r"""
set -e
nic=$(ls /sys/class/net | grep -vx lo | head -n 1)
ip link add link "$nic" name "$nic.100" type vlan id 100
ip link set "$nic.100" up
# any traffic towards the gateway makes the kernel resolve its link-layer address, as a booted guest's DHCP,
# DNS or apt traffic would have; slirp answers for 10.0.2.2 with 52:55:0a:00:02:02 (restrict=on keeps it inside)
python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('10.0.2.2', 9))"
for i in $(seq 50); do ip neigh show 10.0.2.2 | grep -q lladdr && break; sleep 0.1; done
{ echo "== /proc/net/vlan/config"; cat /proc/net/vlan/config; echo "== doctor -v";
  python3 -m guestcheck doctor -v --sample 1 || true; } >&2
python3 -m guestcheck doctor --json --sample 1
"""


def test_vlan_listed_and_slirp_recognised(vm_image: guest.Image) -> None:
    result = guest.run_in_guest(COMMAND, nic_model="virtio-net-pci", cpus=2, timeout=480)
    print(f"\nboot {result.boot_seconds:.1f} s, total {result.wall_seconds:.1f} s\n{result.stderr}")
    assert "Traceback" not in result.stderr
    assert result.exit_code == 1, result.stderr + guest._tail(result.serial_log)  # warnings, nothing critical
    doc = json.loads(result.stdout)
    facts = doc["facts"]
    (nic,) = [n["name"] for n in facts["nics"] if n["kind"] == "paravirtual"]

    assert facts["vlans"] == [{"name": f"{nic}.100", "vlan_id": 100, "lower": nic, "source": "procfs"}]
    by_id = {}
    for f in doc["findings"]:
        by_id.setdefault(f["id"], []).append(f)
    (vlan,) = by_id["VLAN-INTERFACE"]
    assert (vlan["subject"], vlan["summary"]) == (f"{nic}.100", f"VLAN 100 on {nic}")

    (slirp,) = by_id["PATH-NAT-SLIRP"]
    assert slirp["subject"] == nic and slirp["evidence"]["networks"] == ["10.0.2.0/24"]
    # corroborated, not guessed from the numbers: slirp's own link-layer address, on a platform that runs it
    assert slirp["evidence"]["gateway_mac"] == "52:55:0a:00:02:02: slirp's"
    assert slirp["evidence"]["platform"] in ("qemu: can run slirp", "kvm: can run slirp")
    (v4,) = [r for r in facts["path"]["routes"] if r["family"] == "ipv4"]
    assert (v4["gateway"], v4["source"], v4["src_address"], v4["mtu"], v4["dev_mtu"]) == (
        "10.0.2.2", "procfs", "10.0.2.15", 1500, 1500)
    assert "PATH-MTU-MISMATCH" not in by_id

    softirq = facts["softirq"]
    assert softirq["row_mapping"] == "cpu-column"  # Debian 12's 6.1 kernel prints the CPU id
    assert [c["cpu"] for c in softirq["cpus"]] == [0, 1]
    (steer,) = [s for s in softirq["nics"] if s["nic"] == nic]
    names = sorted(i["name"] for i in steer["irqs"])
    # MSI-X gives virtioN-input.0 and virtioN-output.0; without it (as under this QEMU) one INTx line
    # named after the virtio device carries every queue.
    assert (len(names) == 1 and re.fullmatch(r"virtio\d+", names[0])) or (
        len(names) == 2 and re.fullmatch(r"virtio\d+-input\.0", names[0])
        and re.fullmatch(r"virtio\d+-output\.0", names[1])), names
    assert all(i["affinity"] for i in steer["irqs"])
