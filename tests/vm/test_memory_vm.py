"""Memory guarantees in real QEMU guests: an inflated virtio-balloon, and a 256 MiB guest.

Two boots in all. The balloon guest gets its balloon inflated by the host over QMP (a unix socket in a private
temp dir, the same call `virsh setmem` makes), so the kernel really hands pages to the host and guestcheck must
see them go.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time

import pytest

from . import guest

pytestmark = pytest.mark.vm

MiB = 1 << 20
SPLIT = "=====GUESTCHECK-SPLIT====="
# facts once, then judged twice from the file: JSON for the asserts, the human report for the record
DOCTOR = (f"python3 -m guestcheck facts --sample 1 >/tmp/facts.json && "
          f"python3 -m guestcheck doctor --facts /tmp/facts.json --json; echo {SPLIT}; "
          "python3 -m guestcheck doctor --facts /tmp/facts.json -v")


def _split(result: guest.GuestResult) -> tuple[dict, str]:
    assert "Traceback" not in result.stderr, result.stderr
    doc, _, human = result.stdout.partition(SPLIT + "\n")
    return json.loads(doc), human


def _qmp_balloon(path: str, target_bytes: int, replies: list, deadline: float) -> None:
    """Ask QEMU to shrink the guest to target_bytes, as soon as its QMP socket is up."""
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            replies.append({"error": "QMP socket never appeared"})
            return
        time.sleep(0.2)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(path)
        f = s.makefile("rw")
        replies.append(json.loads(f.readline()))  # greeting
        for cmd in ({"execute": "qmp_capabilities"},
                    {"execute": "balloon", "arguments": {"value": target_bytes}}):
            f.write(json.dumps(cmd) + "\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply or "error" in reply:
                    replies.append(reply)
                    break


def test_inflated_virtio_balloon_is_not_guaranteed(vm_image):
    take = 128 * MiB
    pages = take // 4096
    # wait (up to 120 s) until the driver has handed the pages over, then look
    wait = (f"for i in $(seq 240); do n=$(awk '/^balloon_inflate /{{i=$2}} /^balloon_deflate /{{d=$2}} "
            f"END{{print i-d}}' /proc/vmstat); [ \"$n\" -ge {pages} ] && break; sleep 0.5; done; ")
    with tempfile.TemporaryDirectory(prefix="gc-qmp-") as tmp:
        qmp = os.path.join(tmp, "qmp.sock")
        replies: list = []
        talker = threading.Thread(target=_qmp_balloon, args=(qmp, 512 * MiB - take, replies, time.monotonic() + 300),
                                  daemon=True)
        talker.start()
        result = guest.run_in_guest(wait + DOCTOR, memory_mb=512, timeout=420,
                                    extra_qemu_args=["-device", "virtio-balloon-pci,id=balloon0",
                                                     "-qmp", f"unix:{qmp},server=on,wait=off"])
        talker.join(timeout=10)
    assert {"return": {}} in replies, replies
    doc, human = _split(result)
    print(f"\nballoon guest: boot {result.boot_seconds:.1f} s, wall {result.wall_seconds:.1f} s\n{human}")
    memory = doc["facts"]["memory"]
    balloon = next(b for b in memory["balloons"] if b["kind"] == "virtio-balloon")
    assert balloon["bound"] is True
    assert balloon["inflated_bytes"] == take, balloon
    assert balloon["inflated_source"] == "/proc/vmstat balloon_inflate - balloon_deflate"  # Debian 12's 6.1
    assert balloon["deflate_on_oom"] is False  # QEMU's default: the pages leave MemTotal
    assert memory["firmware_bytes"] - memory["total_bytes"] > take
    findings = {f["id"]: f for f in doc["findings"]}
    assert findings["MEM-BALLOON"]["severity"] == "warning"
    assert "128 MiB inflated now" in findings["MEM-BALLOON"]["summary"]
    verdict = findings["MEM-GUARANTEED"]["evidence"]
    assert verdict["guaranteed"] is False
    assert verdict["reasons"][0] == "virtio-balloon bound (128 MiB inflated now, deflate-on-oom off)"
    assert doc["status"] in ("warning", "critical")
    assert "of 512 MiB, not guaranteed: virtio-balloon bound (128 MiB inflated now, deflate-on-oom off)" in human
    assert doc["facts"]["cpu_steal"]["percent"] is not None


def test_256_mib_guest_shows_its_small_ram(vm_image):
    result = guest.run_in_guest(DOCTOR, memory_mb=256, cpus=2, timeout=420)
    doc, human = _split(result)
    print(f"\n256 MiB guest: boot {result.boot_seconds:.1f} s, wall {result.wall_seconds:.1f} s\n{human}")
    memory = doc["facts"]["memory"]
    assert 250 * MiB <= memory["firmware_bytes"] <= 256 * MiB  # what -m 256 handed over, less BIOS holes
    assert 150 * MiB <= memory["total_bytes"] < 256 * MiB  # less what the kernel keeps for itself
    assert memory["balloons"] == [] and memory["cgroup_limit_bytes"] is None
    findings = {f["id"]: f for f in doc["findings"]}
    verdict = findings["MEM-GUARANTEED"]
    assert verdict["evidence"]["guaranteed"] is True and verdict["severity"] == "ok"
    assert verdict["evidence"]["usable_bytes"] == memory["total_bytes"] < 1024 * MiB  # below any buffer profile's
    assert "usable of 256 MiB installed" in verdict["summary"]
    assert "MEM-BALLOON" not in findings
    steal = doc["facts"]["cpu_steal"]
    assert set(steal["per_cpu"]) == {"cpu0", "cpu1"} and steal["percent"] is not None
    assert findings["CPU-STEAL"]["severity"] in ("ok", "info", "warning")
    memory_line = human.splitlines()[2]
    assert memory_line.startswith("memory: ") and "of 256 MiB, guaranteed" in memory_line
