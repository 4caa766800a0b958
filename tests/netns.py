"""Network namespaces for live tests: real veth pairs, bridges and qdiscs that vanish afterwards.

Every object is created inside namespaces the test made (`ip netns add`), so nothing touches the
machine's own interfaces or sysctls. Commands are argv lists, never a shell.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from typing import Iterator, Optional, Sequence

import pytest


def can_make_netns() -> Optional[str]:
    """None when live tests can run here, else the reason to skip."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2"
    return None


requires_netns = pytest.mark.skipif(can_make_netns() is not None, reason=str(can_make_netns()))


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, timeout=timeout, capture_output=True, text=True, **kw)


class Netns:
    """One namespace; `ns.run([...])` runs a command inside it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.name, *argv], **kw)

    def popen(self, argv: Sequence[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kw)

    def ip(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return run(["ip", "-n", self.name, *args], **kw)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"


@contextlib.contextmanager
def netns(prefix: str = "gc") -> Iterator[Netns]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    run(["ip", "netns", "add", name])
    try:
        ns = Netns(name)
        ns.ip("link", "set", "lo", "up")
        yield ns
    finally:
        run(["ip", "netns", "del", name], check=False)


@contextlib.contextmanager
def veth_pair(a: Netns, b: Netns, *, a_addr: str = "10.199.0.1/24", b_addr: str = "10.199.0.2/24",
              a_name: str = "gc0", b_name: str = "gc1") -> Iterator[tuple[str, str]]:
    """A veth pair joining two namespaces, addressed and up. Names are inside the namespaces."""
    tmp = f"gcv{uuid.uuid4().hex[:8]}"
    run(["ip", "link", "add", tmp, "netns", a.name, "type", "veth", "peer", "name", b_name, "netns", b.name])
    a.ip("link", "set", tmp, "name", a_name)
    a.ip("addr", "add", a_addr, "dev", a_name)
    b.ip("addr", "add", b_addr, "dev", b_name)
    a.ip("link", "set", a_name, "up")
    b.ip("link", "set", b_name, "up")
    yield a_name, b_name


def guestcheck_in(ns: Netns, *args: str, timeout: float = 60, wrap: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run this checkout's guestcheck inside a namespace, with the interpreter running the tests (after the
    `wrap` command, such as unshare, when given)."""
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": repo}
    return ns.run([*wrap, sys.executable, "-m", "guestcheck", *args], check=False, timeout=timeout, env=env)


def tbf_limit(ns: Netns, dev: str, rate: str, *, burst: str = "64kb", latency: str = "20ms") -> None:
    """Rate-limit `dev`'s egress inside `ns` with tbf (this kernel has tbf, not netem). Shape both ends
    of a veth pair to limit both directions."""
    ns.run(["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", burst, "latency", latency])


@contextlib.contextmanager
def iperf3_pair(prefix: str, rate: str = "", *, latency: str = "20ms", rmem: str = "",
                server: Sequence[str] = ("-s",)) -> Iterator[tuple[Netns, Netns]]:
    """a (10.199.0.1, the sender) and b (10.199.0.2, running `iperf3 *server`) joined by a veth, each routing by
    default to the other (a path's shaper is found on the default route), both ends shaped by tbf at `rate` with
    the `latency` bound when a rate is given; `rmem` sets b's net.ipv4.tcp_rmem."""
    with netns(prefix) as a, netns(prefix) as b, veth_pair(a, b) as (a_dev, b_dev):
        a.ip("route", "add", "default", "via", "10.199.0.2")
        b.ip("route", "add", "default", "via", "10.199.0.1")
        if rate:
            for ns, dev in ((a, a_dev), (b, b_dev)):
                tbf_limit(ns, dev, rate, latency=latency)
        if rmem:
            b.run(["sysctl", "-qw", f"net.ipv4.tcp_rmem={rmem}"])
        iperf3 = b.popen(["iperf3", *server], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            yield a, b
        finally:
            iperf3.kill()
            iperf3.wait()


ROUTED_UPLINK, ROUTED_DOWNLINK = "gcr1", "gcr0"  # the router's egress towards the server, towards the client


@contextlib.contextmanager
def routed(prefix: str, limit: int, *, rate: str = "100mbit", burst: str = "32kb") -> Iterator[tuple[Netns, Netns,
                                                                                                      Netns]]:
    """client (10.198.1.1) -> router -> server (10.198.2.1), with a tbf of `rate` and byte `limit` on the router's
    egress both ways (ROUTED_UPLINK queues uploads, ROUTED_DOWNLINK downloads): a queue that is not on either end."""
    with netns(prefix) as a, netns(prefix) as r, netns(prefix) as b, \
            veth_pair(a, r, a_addr="10.198.1.1/24", b_addr="10.198.1.254/24", a_name="gc0", b_name="gcr0"), \
            veth_pair(r, b, a_addr="10.198.2.254/24", b_addr="10.198.2.1/24", a_name="gcr1", b_name="gc1"):
        r.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        a.ip("route", "add", "default", "via", "10.198.1.254")
        b.ip("route", "add", "default", "via", "10.198.2.254")
        for dev in (ROUTED_UPLINK, ROUTED_DOWNLINK):
            r.run(["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", burst, "limit",
                   str(limit)])
        yield a, r, b
