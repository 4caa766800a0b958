"""Runs inside the QEMU guest (test_conntrack_tunnels_vm.py): fills a small conntrack table with real loopback
connections, runs doctor, applies the findings' own fixes verbatim, and does the same for gre, geneve, ip6tnl
and wireguard tunnels the Debian kernel has. Prints one JSON document with every doctor report and step.

Why act_ct: nf_conntrack alone tracks nothing (since Linux 4.10 its netfilter hooks are registered only when
something asks for them) and the image has neither nft nor iptables; tc's `ct` action (act_ct) runs conntrack
itself on every packet it sees, so a matchall filter on lo's egress tracks every loopback connection.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time

LIMIT = 64
HELD = 56  # 87.5 % of LIMIT: the warning; 44 % of the doubled limit: no warning


def sh(command: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    if check and out.returncode:
        raise SystemExit(f"{command!r} failed ({out.returncode}): {out.stderr.strip()}")
    return out


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def doctor(sample: float = 0) -> dict:
    out = subprocess.run([sys.executable, "-m", "guestcheck", "doctor", "--json", "--sample", str(sample)],
                         capture_output=True, text=True)
    doc = json.loads(out.stdout)
    doc["_rc"], doc["_stderr"] = out.returncode, out.stderr
    return doc


def fixes(doc: dict, finding_id: str) -> list:
    return [(f["subject"], f["fix"]) for f in doc["findings"] if f["id"] == finding_id]


def connections(server: socket.socket, n: int) -> list:
    held = []
    for _ in range(n):
        c = socket.create_connection(server.getsockname(), timeout=5)
        s, _ = server.accept()
        held += [c, s]
    return held


def flood(port: int, n: int) -> list:
    """Connection attempts that need new entries while the table is full: SYNs conntrack must refuse."""
    out = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        out.append(s)
    return out


def conntrack_part(report: dict) -> None:
    for mod in ("nf_conntrack", "act_ct", "sch_ingress", "cls_matchall"):
        sh(f"modprobe {mod}")
    sh(f"sysctl -w net.netfilter.nf_conntrack_max={LIMIT}")
    sh("tc qdisc add dev lo clsact && tc filter add dev lo egress matchall action ct commit")
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(512)
    held = connections(server, HELD)
    report["count_before"] = int(read("/proc/sys/net/netfilter/nf_conntrack_count"))
    full = doctor()
    report["full"] = full
    [(_, fix)] = fixes(full, "CONNTRACK-TABLE-FULL")
    report["fix"] = fix
    report["fix_rc"] = sh(fix, check=False).returncode
    report["max_after_fix"] = int(read("/proc/sys/net/netfilter/nf_conntrack_max"))
    report["sysctl_d"] = read("/etc/sysctl.d/90-guestcheck-conntrack.conf")
    report["count_after_fix"] = int(read("/proc/sys/net/netfilter/nf_conntrack_count"))
    report["raised"] = doctor()
    # drops during the sample: a flood of SYNs past the (raised) limit while doctor samples for 3 s
    sh(f"sysctl -w net.netfilter.nf_conntrack_max={HELD * 2 + 8}")
    # doctor's first reading comes seconds after it starts under TCG: keep new SYNs coming until it is done
    stormed: list = []
    done = threading.Event()

    def storm() -> None:
        while not done.is_set():
            stormed.extend(flood(server.getsockname()[1], 20))
            time.sleep(0.2)

    thread = threading.Thread(target=storm)
    thread.start()
    try:
        report["dropping"] = doctor(sample=3)
    finally:
        done.set()
        thread.join()
    for s in held + stormed:
        s.close()


def tunnels_part(report: dict) -> None:
    sh("ip link add gcv0 type veth peer name gcv1 && ip addr add 10.199.0.1/24 dev gcv0 "
       "&& ip -6 addr add fd00:199::1/64 dev gcv0 nodad && ip link set gcv0 mtu 1400 up && ip link set gcv1 up")
    made = {}
    tries = {
        "gctgre": "ip link add gctgre type gre remote 10.199.0.2 local 10.199.0.1 key 5",
        "gctgnv": "ip link add gctgnv type geneve id 7 remote 10.199.0.2",
        "gct6": "ip link add gct6 type ip6tnl remote fd00:199::2 local fd00:199::1",
        "gctwg": "ip link add gctwg type wireguard",
    }
    for name, command in tries.items():
        out = sh(command, check=False)
        made[name] = out.returncode == 0 or out.stderr.strip()
        if out.returncode == 0:
            sh(f"ip link set {name} mtu 1500 up")
    if made.get("gctwg") is True:
        from pyroute2 import WireGuard

        wg = WireGuard()
        key = lambda: base64.b64encode(os.urandom(32)).decode()  # noqa: E731
        wg.set("gctwg", private_key=key(), listen_port=51820,
               peer={"public_key": key(), "endpoint_addr": "10.199.0.2", "endpoint_port": 51820,
                     "allowed_ips": ["10.9.0.0/24"]})
        wg.close()
    report["tunnels_made"] = made
    before = doctor()
    report["tunnels_before"] = before
    report["tunnel_fixes"] = {}
    for subject, fix in fixes(before, "TUNNEL-MTU"):
        report["tunnel_fixes"][subject] = [fix, sh(fix, check=False).returncode]
    report["tunnels_after"] = doctor()


def main() -> None:
    report: dict = {}
    try:
        conntrack_part(report)
        tunnels_part(report)
    finally:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
