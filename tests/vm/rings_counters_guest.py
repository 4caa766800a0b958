"""Runs inside the QEMU guest (test_rings_counters_vm.py): lowers the virtio-net and e1000 RX rings with
`ethtool -G`, runs doctor, applies the ring findings' fixes verbatim, and checks that the virtio NIC's per-queue
packet and byte counters move with traffic sent to the slirp gateway (10.0.2.2, kept inside QEMU by
restrict=on). Prints one JSON document."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

GATEWAY = "10.0.2.2"


def sh(argv: list) -> dict:
    out = subprocess.run(argv, capture_output=True, text=True)
    return {"rc": out.returncode, "out": out.stdout, "err": out.stderr}


def doctor() -> dict:
    out = subprocess.run([sys.executable, "-m", "guestcheck", "doctor", "--json", "--sample", "0"],
                         capture_output=True, text=True)
    doc = json.loads(out.stdout)
    doc["_rc"], doc["_stderr"] = out.returncode, out.stderr
    return doc


def nic_by_driver(driver: str) -> str:
    for name in sorted(os.listdir("/sys/class/net")):
        link = f"/sys/class/net/{name}/device/driver"
        if os.path.islink(link) and os.path.basename(os.readlink(link)) == driver:
            return name  # virtio-net's device is virtioN, bound to virtio_net; e1000's is the PCI function
    raise SystemExit(f"no {driver} interface")


def ring_findings(doc: dict) -> dict:
    return {f["subject"]: f for f in doc["findings"] if f["id"].startswith("RING-")}


def stats(doc: dict, name: str) -> dict:
    return next(n for n in doc["facts"]["nics"] if n["name"] == name)["driver_stats"]


def main() -> None:
    virtio, e1000 = nic_by_driver("virtio_net"), nic_by_driver("e1000")
    result: dict = {"virtio": virtio, "e1000": e1000}
    result["g_before"] = {n: sh(["ethtool", "-g", n])["out"] for n in (virtio, e1000)}
    result["lower"] = {virtio: sh(["ethtool", "-G", virtio, "rx", "32"]),
                       e1000: sh(["ethtool", "-G", e1000, "rx", "80"])}
    lowered = doctor()
    result["lowered"] = {"rings": {n["name"]: n["rings"] for n in lowered["facts"]["nics"]},
                         "findings": ring_findings(lowered), "rc": lowered["_rc"], "stderr": lowered["_stderr"]}
    result["fixes"] = {}
    for name, finding in ring_findings(lowered).items():
        result["fixes"][name] = sh(["sh", "-c", finding["fix"]])
    fixed = doctor()
    result["fixed"] = {"rings": {n["name"]: n["rings"] for n in fixed["facts"]["nics"]},
                       "findings": ring_findings(fixed)}

    # the virtio NIC's per-queue counters move with traffic: UDP to the slirp gateway only
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"arp", (GATEWAY, 9))  # resolve the gateway first: the neighbour queue holds only a few packets
    time.sleep(1)
    before = doctor()
    for _ in range(300):
        s.sendto(b"g" * 100, (GATEWAY, 9))
    s.close()
    after = doctor()
    result["traffic"] = {"before": stats(before, virtio), "after": stats(after, virtio),
                         "ethtool_after": sh(["ethtool", "-S", virtio])["out"],
                         "counters_after": next(c for c in after["facts"]["nic_counters"] if c["nic"] == virtio)}
    print(json.dumps(result))


main()
