"""A network PCI device with no driver, in a real QEMU guest: a second NIC (an emulated e1000 on its own
user-mode network, restricted) is unbound from its driver through sysfs, doctor reports PCI-NIC-NO-DRIVER for
that PCI function (it is gone from /sys/class/net, so only /sys/bus/pci/devices shows it), and the finding's
fix, run verbatim, binds the driver again and clears it. QEMU 7.2 has no SR-IOV emulation: VFs, netvsc and
MANA are covered by fake trees (tests/unit/test_fastpath.py)."""

from __future__ import annotations

import json

import pytest

from . import guest

pytestmark = pytest.mark.vm

DOCTOR = "python3 -m guestcheck doctor --json --sample 0"
SPLIT = "=====guestcheck-split====="
PICK_FIX = ("import json; d = json.load(open('/tmp/before.json')); "
            "print(chr(10).join(f['fix'] for f in d['findings'] if f['id'] == 'PCI-NIC-NO-DRIVER'))")
SCRIPT = f"""
bdf=""
for d in /sys/bus/pci/drivers/e1000/0000:*; do bdf=$(basename "$d"); done
echo "$bdf" > /sys/bus/pci/drivers/e1000/unbind
{DOCTOR} > /tmp/before.json; echo "rc=$?" > /tmp/before.rc
python3 -c "{PICK_FIX}" > /tmp/fix.sh
bash -e /tmp/fix.sh; echo "fixrc=$?" > /tmp/fix.rc
sleep 1
{DOCTOR} > /tmp/after.json
echo "bdf=$bdf"; cat /tmp/before.rc /tmp/fix.rc; echo {SPLIT}; cat /tmp/fix.sh; echo {SPLIT}
cat /tmp/before.json; echo {SPLIT}; cat /tmp/after.json
"""


def test_unbound_second_nic_is_critical_and_its_fix_binds_it_again(vm_image):
    result = guest.run_in_guest(SCRIPT, extra_qemu_args=[
        "-netdev", "user,id=second,restrict=on", "-device", "e1000,netdev=second"], timeout=420)
    assert "Traceback" not in result.stderr, result.stderr
    head, fix, before_text, after_text = result.stdout.split(SPLIT)
    lines = dict(line.split("=", 1) for line in head.split())
    bdf = lines["bdf"]
    assert bdf.startswith("0000:") and lines["rc"] == "2" and lines["fixrc"] == "0", head
    before, after = json.loads(before_text), json.loads(after_text)
    (fn,) = [f for f in before["facts"]["pci_network"] if f["address"] == bdf]
    assert (fn["driver"], fn["pci_id"], fn["interfaces"]) == (None, "8086:100e", [])
    assert not any(n["driver"] == "e1000" for n in before["facts"]["nics"])  # no interface without a driver
    (finding,) = [f for f in before["findings"] if f["id"] == "PCI-NIC-NO-DRIVER"]
    assert (finding["subject"], finding["severity"], finding["evidence"]["module"]) == (bdf, "critical", "e1000")
    assert fix.split() == ["modprobe", "e1000", "echo", bdf, ">", "/sys/bus/pci/drivers_probe"]
    assert before["status"] == "critical"
    (fn,) = [f for f in after["facts"]["pci_network"] if f["address"] == bdf]
    assert fn["driver"] == "e1000" and len(fn["interfaces"]) == 1
    assert not [f for f in after["findings"] if f["id"] == "PCI-NIC-NO-DRIVER"]
    assert any(n["driver"] == "e1000" and n["name"] == fn["interfaces"][0] for n in after["facts"]["nics"])
