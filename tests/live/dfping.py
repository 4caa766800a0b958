"""A ping with DF set (`ping -M do -s N`), in Python: one ICMP echo from a raw socket with IP_PMTUDISC_DO,
run inside a namespace. The test machines have no iputils ping; the kernel treats both alike (a local DF
send larger than the path MTU fails with EMSGSIZE, one that a tunnel cannot carry is dropped there)."""

from __future__ import annotations

import sys

from tests.netns import Netns

DF_PING = r"""
import os, select, socket, struct, sys, time
def checksum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
address, size = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF set, never fragmented locally
ident, body = os.getpid() & 0xFFFF, b"g" * size
head = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
try:
    s.sendto(struct.pack("!BBHHH", 8, 0, checksum(head + body), ident, 1) + body, (address, 0))
except OSError as e:
    print("not sent:", e.strerror)
    sys.exit(2)
end = time.monotonic() + 1.5
while time.monotonic() < end:
    if not select.select([s], [], [], max(0.0, end - time.monotonic()))[0]:
        break
    data = s.recv(65535)
    at = (data[0] & 15) * 4
    kind, _, _, who = struct.unpack("!BBHH", data[at:at + 6])
    if kind == 0 and who == ident:
        sys.exit(0)
print("no reply")
sys.exit(1)
"""


def df_ping(ns: Netns, address: str, payload: int) -> bool:
    """One echo of `payload` bytes (+ 28 of ICMP and IPv4 headers) with DF set: answered or not."""
    return ns.run([sys.executable, "-c", DF_PING, address, str(payload)], check=False).returncode == 0
