"""Drops induced on purpose, in namespaces we made, each with the reason the kernel should give and how many
packets were dropped by our own count; and a DropTrace window in a child process around them.

Shared by tests/live/test_trace_live.py and bench/drop_reasons.py. The tracepoint is machine-wide: a window also
counts drops from anything else running, so a scenario compares "counted >= induced * 0.95" and reports the excess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from tests.netns import Netns, netns, run, veth_pair

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD = os.path.join(REPO, "tests", "live", "droptrace_child.py")
PACKETS = 2000


class Window:
    """A DropTrace in a child process under its own mount namespace: `with window() as w: <induce>`, then
    `w.doc` (droptrace_child's JSON)."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.doc: dict = {}
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> Window:
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", sys.executable, CHILD, *self.args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "READY", (line, self.proc.stderr.read() if self.proc.stderr else "")
        return self

    def __enter__(self) -> Window:
        return self.start()

    def stop(self) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        out, err = self.proc.communicate("stop\n", timeout=60)
        assert self.proc.returncode == 0 and "Traceback" not in err, err
        self.doc = json.loads(out.strip().splitlines()[-1])
        return self.doc

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            if exc[0] is None:
                self.stop()
            else:
                self.proc.kill()
                self.proc.wait()

    def counted(self, reason: str) -> int:
        return sum(r["count"] for r in self.doc["result"]["rows"] if r["reason"] == reason)


class DoctorWindow(Window):
    """The same window, taken by the command users run: `guestcheck doctor --drops --json` over SECONDS, in its
    own mount namespace (where tracefs is mounted nowhere it mounts its own); `doc["result"]` is its facts' drops.
    Started one second before the traffic and long enough to hold it."""

    SECONDS = 6

    def start(self) -> Window:
        env = {**os.environ, "PYTHONPATH": REPO}
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", sys.executable, "-m", "guestcheck",
                                      "doctor", "--drops", "--json", "--sample", str(self.SECONDS)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(1.0)  # start-up and the trace's first reading
        return self

    def stop(self) -> dict:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        report = json.loads(out)
        self.doc = {"result": report["facts"]["drops"], "drops": report["drops"], "findings": report["findings"]}
        return self.doc


WINDOWS = {"tracer": Window, "doctor": DoctorWindow}
window_kind = "tracer"  # bench/drop_reasons.py --via doctor switches every scenario to the command


def window() -> Window:
    return WINDOWS[window_kind]()


@dataclass
class Outcome:
    name: str
    reason: str
    induced: int
    counted: int
    by_reason: Dict[str, int]
    doc: dict

    @property
    def ratio(self) -> float:
        return self.counted / self.induced if self.induced else float("nan")


def _py(ns: Netns, source: str, *args: str, timeout: float = 60) -> str:
    out = ns.run([sys.executable, "-c", source, *args], timeout=timeout)
    return out.stdout


def _outcome(name: str, reason: str, induced: int, w: Window) -> Outcome:
    by_reason: Dict[str, int] = {}
    for row in w.doc["result"]["rows"]:
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + row["count"]
    return Outcome(name, reason, induced, w.counted(reason), by_reason, w.doc)


SEND_UDP = """
import socket, sys
dst, port, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
src = sys.argv[5] if len(sys.argv) > 5 else None
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if src:
    s.bind((src, 0))
sent = 0
for _ in range(n):
    try:
        s.sendto(b"x" * size, (dst, port))
        sent += 1
    except OSError:
        pass
print(sent)
"""


def no_socket() -> Outcome:
    """UDP to a port nobody listens on, on a namespace's loopback."""
    with netns("gcdrop") as a, window() as w:
        sent = int(_py(a, SEND_UDP, "127.0.0.1", "9", str(PACKETS), "16"))
    return _outcome("closed UDP port", "NO_SOCKET", sent, w)


RCVBUF_FLOOD = """
import socket, sys
n = int(sys.argv[1])
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
r.bind(("127.0.0.1", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(n):
    s.sendto(b"y" * 1000, r.getsockname())
r.setblocking(False)
queued = 0
while True:
    try:
        r.recv(2000)
        queued += 1
    except BlockingIOError:
        break
print(n - queued)
"""


def socket_rcvbuff() -> Outcome:
    """A UDP socket with the smallest SO_RCVBUF, flooded and never read until the flood ends."""
    with netns("gcdrop") as a, window() as w:
        dropped = int(_py(a, RCVBUF_FLOOD, str(PACKETS)))
    return _outcome("SO_RCVBUF flood", "SOCKET_RCVBUFF", dropped, w)


def ip_rpfilter() -> Outcome:
    """rp_filter=1 in the receiver; packets arrive on one link from a source it routes through another."""
    with netns("gcdrop") as a, netns("gcdrop") as b, veth_pair(a, b), \
            veth_pair(a, b, a_addr="10.198.0.1/24", b_addr="10.198.0.2/24", a_name="gc2", b_name="gc3"):
        for key in ("all", "gc1"):
            b.run(["sysctl", "-q", "-w", f"net.ipv4.conf.{key}.rp_filter=1"])
        b.ip("route", "add", "10.55.0.0/24", "dev", "gc3")
        a.ip("addr", "add", "10.55.0.1/32", "dev", "gc0")
        # A permanent neighbour entry: b's rp_filter also refuses a's ARP requests sent from 10.55.0.1, and the
        # packets would die waiting for ARP (NEIGH_FAILED) instead of reaching the filter.
        mac = json.loads(b.ip("-j", "link", "show", "gc1").stdout)[0]["address"]
        a.ip("neigh", "replace", "10.199.0.2", "lladdr", mac, "dev", "gc0", "nud", "permanent")
        with window() as w:
            sent = int(_py(a, SEND_UDP, "10.199.0.2", "9", str(PACKETS), "16", "10.55.0.1"))
    return _outcome("rp_filter=1", "IP_RPFILTER", sent, w)


def qdisc_drop() -> Outcome:
    """tbf with a 3000-byte queue on the sender's veth, flooded with 1000-byte datagrams; induced = tbf's own
    dropped counter."""
    with netns("gcdrop") as a, netns("gcdrop") as b, veth_pair(a, b):
        a.run(["tc", "qdisc", "replace", "dev", "gc0", "root", "tbf", "rate", "1mbit", "burst", "5kb", "limit",
               "3000"])
        b.run(["ping", "-c", "1", "-W", "2", "10.199.0.1"], check=False)
        with window() as w:
            _py(a, SEND_UDP, "10.199.0.2", "9", str(PACKETS), "1000")
            stats = json.loads(a.run(["tc", "-s", "-j", "qdisc", "show", "dev", "gc0"]).stdout)
    dropped = sum(q.get("drops", 0) for q in stats if q.get("kind") == "tbf")
    return _outcome("tbf limit", "QDISC_DROP", dropped, w)


def netfilter_drop() -> Outcome:
    """An nft rule dropping UDP to one port, in the receiver's input hook."""
    with netns("gcdrop") as a:
        a.run(["nft", "add", "table", "inet", "gcdrop"])
        a.run(["nft", "add chain inet gcdrop input { type filter hook input priority 0; policy accept; }"])
        a.run(["nft", "add", "rule", "inet", "gcdrop", "input", "udp", "dport", "4242", "drop"])
        with window() as w:
            sent = int(_py(a, SEND_UDP, "127.0.0.1", "4242", str(PACKETS), "16"))
    return _outcome("nft drop", "NETFILTER_DROP", sent, w)


LISTEN_FLOOD = """
import socket, sys, time
n = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
clients = []
for _ in range(n):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(srv.getsockname())
    except BlockingIOError:
        pass
    clients.append(c)
time.sleep(1.5)
print(open("/proc/net/netstat").read())
"""


def listen_overflow() -> Outcome:
    """More connections than a listen(1) backlog holds; induced = TcpExtListenOverflows."""
    with netns("gcdrop") as a, window() as w:
        text = _py(a, LISTEN_FLOOD, "50")
    lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
    overflows = int(dict(zip(lines[0][1:], lines[1][1:]))["ListenOverflows"]) if len(lines) == 2 else 0
    return _outcome("listen backlog overflow", "TCP_LISTEN_OVERFLOW", overflows, w)


SCENARIOS: List[Callable[[], Outcome]] = [no_socket, socket_rcvbuff, ip_rpfilter, qdisc_drop]
if shutil.which("nft"):
    SCENARIOS.append(netfilter_drop)


def tracefs_shell(script: str) -> str:
    """A shell script run with tracefs mounted at /sys/kernel/tracing in a private mount namespace (for the tests'
    own looks at instances; the host's mounts are never changed). The script is ours, never user input."""
    return run(["unshare", "-m", "--propagation", "private", "sh", "-ec",
                "mount -t tracefs nodev /sys/kernel/tracing; cd /sys/kernel/tracing; " + script]).stdout
