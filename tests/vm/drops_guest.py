"""Runs inside the QEMU guest (test_drops_vm.py): `doctor --drops` on Debian 12's own kernel (6.1), whose
kfree_skb tracepoint has the older reason list, while 1000 UDP datagrams go to a closed port on 127.0.0.1 one
second into the window. Prints one JSON document: doctor's report, the kernel's real kfree_skb `format` file,
`uname -r`, the tracefs mounts before and after each run and the instances left.

Two runs: the first where tracefs is mounted nowhere (doctor mounts it and must unmount it), the second where we
mounted it ourselves (doctor must leave that mount alone). Between them, a few event lines are read from a trace
instance of this script's own (gcvmtest-capture), so the unit tests get real 6.1 lines too.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time

TRACING = "/sys/kernel/tracing"
EVENT = "events/skb/kfree_skb"
PACKETS = 1000
PORT = 9  # discard: nothing listens in the guest


def tracefs_mounts() -> list:
    """mountinfo's tracefs lines, as (mount id, mount point)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "tracefs":
                out.append([fields[0], fields[4]])
    return out


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def enabled(pid: int) -> bool:
    """True once doctor's own instance has kfree_skb enabled: its window has begun."""
    try:
        return read(f"{TRACING}/instances/guestcheck-{pid}/{EVENT}/enable").strip() == "1"
    except OSError:
        return False


def send(n: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(n):
        s.sendto(b"x" * 16, ("127.0.0.1", PORT))
    s.close()


def doctor(sample: int, packets: int) -> dict:
    """doctor --drops over `sample` seconds; `packets` datagrams one second after its instance is enabled (under TCG
    doctor takes seconds to reach its window, so a fixed sleep after starting it would miss it)."""
    proc = subprocess.Popen([sys.executable, "-m", "guestcheck", "doctor", "--drops", "--json", "--sample",
                             str(sample)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    seen = False
    while packets and time.monotonic() < deadline and proc.poll() is None:
        if enabled(proc.pid):
            seen = True
            break
        time.sleep(0.05)
    if seen:
        time.sleep(1.0)
        send(packets)
    out, err = proc.communicate(timeout=300)
    try:
        doc = json.loads(out)
    except ValueError:
        doc = {"_stdout": out[-2000:]}
    doc["_rc"], doc["_stderr"], doc["_window_seen"] = proc.returncode, err, seen
    return doc


def capture_lines(report: dict) -> None:
    """A few real event lines, from an instance of ours, removed again."""
    inst = f"{TRACING}/instances/gcvmtest-capture"
    os.mkdir(inst)
    try:
        with open(f"{inst}/{EVENT}/enable", "w") as f:
            f.write("1")
        send(3)
        time.sleep(0.5)
        with open(f"{inst}/{EVENT}/enable", "w") as f:
            f.write("0")
        report["trace_lines"] = [line for line in read(f"{inst}/trace").splitlines() if not line.startswith("#")]
    finally:
        os.rmdir(inst)


def main() -> None:
    report: dict = {"uname_r": platform.release()}
    try:
        report["mounts_before"] = tracefs_mounts()
        report["first"] = doctor(3, PACKETS)
        report["mounts_after"] = tracefs_mounts()
        # Now mount it ourselves: to read the real format and the instances, and for the second run.
        mounted = not report["mounts_after"]
        if mounted:
            subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACING], check=True)
        try:
            report["format"] = read(f"{TRACING}/{EVENT}/format")
            report["instances_after"] = sorted(os.listdir(f"{TRACING}/instances"))
            capture_lines(report)
            report["mounts_ours"] = tracefs_mounts()
            report["second"] = doctor(1, 0)
            report["mounts_after_second"] = tracefs_mounts()
            report["instances_after_second"] = sorted(os.listdir(f"{TRACING}/instances"))
        finally:
            if mounted:
                subprocess.run(["umount", TRACING], check=True)
    finally:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
