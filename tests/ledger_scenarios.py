"""Six ways to lose packets on purpose, in network namespaces we make, each counted independently of the
counter the loss ledger (the `ledger` section of doctor/1 JSON: rows of layer, counter, total, rise) reads.

Each scenario is a context manager that builds its namespaces and yields a `Scenario`: the namespace doctor must
look in, the ledger row it should name (layer + counter) and the finding, and `induce()`, which runs the traffic
(a few seconds, only between addresses inside the namespaces) and returns an `Induced` count taken some other
way (iperf3's own reports, sockets' send and receive counts, the client's own SYN retransmissions). Leaving the
`with` kills every process it started and deletes the namespaces, which removes their veths and qdiscs, on every
path. bench/ledger_scenarios.py and tests/live/test_ledger_scenarios_live.py use them.

`measure()` runs `guestcheck doctor --json --sample S` in the doctor namespace around `induce()`, the window
opened before the traffic starts and closed after it ends; `ledger_row()` picks the row that should name it.

The traffic roles that run inside a namespace (a UDP sender, a drained receiver, a listener that never accepts, a
connect flood) are this module's command line: `python3 -m tests.ledger_scenarios ROLE ...`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from tests.netns import Netns, netns, veth_pair

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENDER, RECEIVER = "10.199.0.1", "10.199.0.2"
PORT = 5201  # iperf3's; the python roles use it too (each scenario has its own namespaces)


@dataclass
class Induced:
    """Packets induced to drop, counted without the counter the ledger reads."""

    count: int
    method: str                                             # how `count` was taken, one line
    figures: Dict[str, int] = field(default_factory=dict)   # the numbers `count` is made from
    elsewhere: Dict[str, int] = field(default_factory=dict)  # drops that would spoil the count: all 0 when clean


@dataclass
class Scenario:
    name: str
    title: str
    doctor_ns: Netns               # where doctor must look (these counters are per network namespace)
    layer: str                     # the ledger row that should count it (ledger-spec.md)
    counter: str
    finding: str                   # the finding that row should explain
    seconds: float                 # about how long induce() runs
    induce: Callable[[], Induced]  # once per scenario
    device: Optional[str] = None   # qdisc rows: the interface
    kind: Optional[str] = None     # qdisc rows: the qdisc kind that drops
    where: str = "receiver"        # which end doctor_ns is, in words


# -- helpers run here ---------------------------------------------------------------------------------------

def _env() -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": REPO}


def _role(ns: Netns, *args: str, **kw: Any) -> subprocess.Popen:
    """This module's ROLE command line, run inside `ns` by the interpreter running us."""
    return ns.popen([sys.executable, "-m", "tests.ledger_scenarios", *args], env=_env(), text=True, **kw)


@contextlib.contextmanager
def _process(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """The process is gone when the block is left, however it is left."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _ready(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait for the role's "ready" line."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        raise RuntimeError(f"role did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")


def _listening(ns: Netns, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ns.run(["ss", "-Hltn", f"sport = :{port}"], check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} in {ns.name}")


def nstat(ns: Netns, *names: str) -> Dict[str, int]:
    """Absolute SNMP counters of `ns` (nstat -a: no history file is read or written with -s)."""
    out = ns.run(["nstat", "-asz", "--json", *names])
    return {k: int(v) for k, v in json.loads(out.stdout)["kernel"].items()}


def qdisc_stat(ns: Netns, dev: str, kind: str, stat: str = "drops") -> int:
    """`tc -s qdisc` figure of the `kind` qdiscs on `dev` (the tool an admin reads)."""
    out = ns.run(["tc", "-s", "-j", "qdisc", "show", "dev", dev])
    return sum(int(q.get(stat, 0)) for q in json.loads(out.stdout) if q.get("kind") == kind)


def kernel_total(s: Scenario) -> int:
    """The scenario's counter as the shell tools read it in the doctor namespace (tc -s, nstat -a): a cross-check
    of the scenario itself, since the namespaces are fresh (their counters started at 0)."""
    if s.layer == "qdisc":
        assert s.device is not None and s.kind is not None
        return qdisc_stat(s.doctor_ns, s.device, s.kind, s.counter)
    return nstat(s.doctor_ns, s.counter).get(s.counter, 0)


def _quiet(ns: Netns) -> None:
    """No IPv6 in our namespaces: router and neighbour solicitations would cross the shaped veths too."""
    ns.run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
           check=False)


@contextlib.contextmanager
def _pair(prefix: str) -> Iterator[tuple[Netns, Netns]]:
    """A sender and a receiver joined by a veth: gc0 (10.199.0.1) and gc1 (10.199.0.2)."""
    with netns(prefix) as a, netns(prefix) as b:
        _quiet(a)
        _quiet(b)
        with veth_pair(a, b, a_addr=f"{SENDER}/24", b_addr=f"{RECEIVER}/24"):
            yield a, b


def _iperf3(client_ns: Netns, server_ns: Netns, client_args: Sequence[str]) -> tuple[dict, dict]:
    """One iperf3 run: the client's and the server's JSON reports."""
    server = server_ns.popen(["iperf3", "-s", "-1", "-B", RECEIVER, "-p", str(PORT), "-J"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _process(server):
        _listening(server_ns, PORT)
        client = client_ns.run(["iperf3", "-c", RECEIVER, "-p", str(PORT), "-J", *client_args], check=False,
                               timeout=60)
        out, err = server.communicate(timeout=30)
    if client.returncode != 0 or server.returncode != 0:
        raise RuntimeError(f"iperf3 failed: {client.stdout[-500:]} {client.stderr} {err}")
    return json.loads(client.stdout), json.loads(out)


def _udp_send(ns: Netns, dst: str, count: int, *, size: int = 200, src: str = "") -> int:
    """Datagrams sent from `ns` to dst:PORT (unconnected, so ICMP errors coming back are ignored)."""
    out = _role(ns, "udp-send", src or "-", dst, str(PORT), str(count), str(size), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
    with _process(out):
        stdout, stderr = out.communicate(timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"udp-send failed: {stderr}")
    return int(json.loads(stdout)["sent"])


# -- the six scenarios -----------------------------------------------------------------------------------------

TBF_UDP = {"rate": "10mbit", "burst": "16kb", "limit": "15000"}
TBF_UDP_SEND = ("-u", "-b", "40M", "-l", "1400", "-t", "2")


@contextlib.contextmanager
def qdisc_drops() -> Iterator[Scenario]:
    """A tbf with a small limit (10 Mbit/s, 15,000 bytes, about 10 datagrams) on the sender's veth, under an
    iperf3 UDP flow at 40 Mbit/s for 2 s: about three datagrams in four are dropped by the tbf.

    Count: the datagrams the iperf3 client sent (its end.sum.packets) less those the server received (its
    packets - lost_packets; the server's own lost_packets misses the last datagrams dropped after the highest
    one it saw). The sender's UDP socket is told nothing (a qdisc drop is ENOBUFS, which UDP swallows without
    IP_RECVERR), so iperf3 counts every datagram as sent. Elsewhere: the receiver's UDP errors, which would be
    losses in the same difference; they must stay 0.
    The same drops move two more counters in the sender's namespace, by exactly as much (measured): UDP's
    UdpSndbufErrors (that swallowed ENOBUFS) and IpOutDiscards. One loss, three rows: not to be added up."""
    with _pair("gcls1") as (snd, rcv):
        snd.run(["tc", "qdisc", "replace", "dev", "gc0", "root", "tbf", *_flat(TBF_UDP)])

        def induce() -> Induced:
            before = nstat(rcv, "UdpInErrors")
            client, server = _iperf3(snd, rcv, TBF_UDP_SEND)
            sent = int(client["end"]["sum"]["packets"])
            seen, lost = int(server["end"]["sum"]["packets"]), int(server["end"]["sum"]["lost_packets"])
            received = seen - lost
            rcv_errors = nstat(rcv, "UdpInErrors")["UdpInErrors"] - before["UdpInErrors"]
            return Induced(sent - received - rcv_errors, "iperf3: client's packets - server's received",
                           {"sent": sent, "received": received, "server_lost_packets": lost},
                           {"receiver UdpInErrors": rcv_errors})

        yield Scenario("qdisc-drops", "tbf, small limit, iperf3 -u", snd, "qdisc", "drops", "QDISC-DROPS", 3.0,
                       induce, device="gc0", kind="tbf", where="sender")


RCVBUF_DATAGRAMS = 5000


@contextlib.contextmanager
def udp_rcvbuf_errors() -> Iterator[Scenario]:
    """A UDP receiver with SO_RCVBUF=1 (the kernel's minimum, a few datagrams) that reads nothing while 5,000
    datagrams of 200 bytes arrive, then drains its queue. Count: datagrams sent - datagrams received."""
    with _pair("gcls2") as (snd, rcv):
        receiver = _role(rcv, "udp-recv", RECEIVER, str(PORT), "1", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
        with _process(receiver):
            _ready(receiver)

            def induce() -> Induced:
                sent = _udp_send(snd, RECEIVER, RCVBUF_DATAGRAMS)
                stdout, stderr = receiver.communicate("drain\n", timeout=30)
                if receiver.returncode != 0:
                    raise RuntimeError(f"udp-recv failed: {stderr}")
                received = int(json.loads(stdout)["received"])
                return Induced(sent - received, "sockets: datagrams sent - datagrams the receiver read",
                               {"sent": sent, "received": received})

            yield Scenario("udp-rcvbuf", "UDP receiver, SO_RCVBUF=1, flooded", rcv, "udp", "UdpRcvbufErrors",
                           "UDP-RCVBUF-ERRORS", 1.5, induce)


NOPORT_DATAGRAMS = 3000


@contextlib.contextmanager
def udp_no_ports() -> Iterator[Scenario]:
    """3,000 datagrams to a port nothing listens on. Count: datagrams sent (the receiver answers each with an
    ICMP port unreachable, rate-limited; the sender's socket is unconnected and ignores them)."""
    with _pair("gcls3") as (snd, rcv):
        def induce() -> Induced:
            sent = _udp_send(snd, RECEIVER, NOPORT_DATAGRAMS)
            return Induced(sent, "sockets: datagrams sent to a closed port", {"sent": sent})

        yield Scenario("udp-noport", "UDP to a closed port", rcv, "udp", "UdpNoPorts", "UDP-NO-PORT", 1.0, induce)


LISTEN_BACKLOG, LISTEN_CONNECTS, LISTEN_WAIT = 1, 100, 2.5


@contextlib.contextmanager
def listen_overflows() -> Iterator[Scenario]:
    """A listener with backlog 1 that never accepts, flooded with 100 connects held for 2.5 s.

    What TcpExtListenOverflows counts (measured on this kernel, 6.18): handshake PACKETS dropped because the
    accept queue was full, not connections. With the queue full, every SYN is dropped in tcp_conn_request before
    a request socket is made (ListenOverflows and ListenDrops +1 each), and the client retransmits it: this
    kernel's SYN timeouts are linear for the first four (net.ipv4.tcp_syn_linear_timeouts), 1 s apart, so a
    connect held 2.5 s sends 3 SYNs and counts 3. A final ACK that finds the queue full (a SYN that got in while
    the last place was still taken by a half-open connection) counts too, once per ACK, and the connection stays
    half-open on the server only. Measured: 50 connects + 150 SYN retransmits -> 200 overflows; without the
    prefill, 50 connects + 144 retransmits - 2 admitted -> 192 (and 200 + 396 - 2 -> 594).

    To leave only SYN drops, the accept queue is filled first (backlog 1 admits 2: the queue is full when it
    holds more than the backlog), then the flood starts: no flood connection is admitted (checked: `elsewhere`).
    Count: SYN packets the client sent in the flood = connects + the client's own TcpExtTCPSynRetrans (in the
    client's namespace, not the listener's, whose counter the ledger reads) - flood connections established."""
    with _pair("gcls4") as (cli, srv):
        listener = _role(srv, "listen", RECEIVER, str(PORT), str(LISTEN_BACKLOG), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with _process(listener):
            _ready(listener)

            def induce() -> Induced:
                before = nstat(cli, "TcpExtTCPSynRetrans")["TcpExtTCPSynRetrans"]
                flood = _role(cli, "connect-flood", RECEIVER, str(PORT), str(LISTEN_BACKLOG + 1),
                              str(LISTEN_CONNECTS), str(LISTEN_WAIT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                with _process(flood):
                    stdout, stderr = flood.communicate(timeout=60)
                if flood.returncode != 0:
                    raise RuntimeError(f"connect-flood failed: {stderr}")
                result = json.loads(stdout)
                retrans = nstat(cli, "TcpExtTCPSynRetrans")["TcpExtTCPSynRetrans"] - before
                connects, established = int(result["connects"]), int(result["established"])
                return Induced(connects + retrans - established,
                               "client: connects + its TcpExtTCPSynRetrans - established (SYN packets dropped)",
                               {"connects": connects, "syn_retransmits": retrans,
                                "prefilled": int(result["prefilled"])},
                               {"flood connections established": established})

            yield Scenario("listen-overflow", "listen backlog 1, connect flood", srv, "tcp", "TcpExtListenOverflows",
                           "TCP-LISTEN-OVERFLOW", LISTEN_WAIT + 1.0, induce, where="listener")


RPF_DATAGRAMS, RPF_SOURCE = 3000, "10.198.0.7"


@contextlib.contextmanager
def rp_filter_drops() -> Iterator[Scenario]:
    """An asymmetric route under strict rp_filter: the receiver has two links, gc1 to the sender (10.199.0.0/24)
    and gc2 to a third namespace (10.198.0.0/24). The sender sends 3,000 datagrams from 10.198.0.7 (an address
    of its own, on the other subnet) into gc1; the receiver would route replies to 10.198.0.7 out of gc2, so
    rp_filter=1 drops every one. The sender's neighbour entry for the receiver is static: an ARP request from
    10.198.0.7 would fail the same check and nothing would be sent. Count: datagrams sent."""
    with _pair("gcls5") as (snd, rcv), netns("gcls5") as other:
        _quiet(other)
        with veth_pair(rcv, other, a_addr="10.198.0.2/24", b_addr="10.198.0.1/24", a_name="gc2", b_name="gc3"):
            snd.ip("addr", "add", f"{RPF_SOURCE}/32", "dev", "gc0")
            mac = json.loads(rcv.ip("-j", "link", "show", "dev", "gc1").stdout)[0]["address"]
            snd.ip("neigh", "replace", RECEIVER, "lladdr", mac, "dev", "gc0", "nud", "permanent")
            rcv.run(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.gc1.rp_filter=1"])

            def induce() -> Induced:
                sent = _udp_send(snd, RECEIVER, RPF_DATAGRAMS, src=RPF_SOURCE)
                return Induced(sent, f"sockets: datagrams sent from {RPF_SOURCE} into the wrong link", {"sent": sent})

            yield Scenario("rp-filter", "asymmetric route, rp_filter=1", rcv, "ip", "TcpExtIPReversePathFilter",
                           "IP-RPFILTER-DROPS", 1.0, induce)


TBF_TCP = {"rate": "100mbit", "burst": "16kb", "limit": "60000"}
TCP_SECONDS = 3


@contextlib.contextmanager
def tcp_retransmits() -> Iterator[Scenario]:
    """A path shaped to 100 Mbit/s by a tbf with a short queue (60,000 bytes, about 40 segments) on the sender's
    veth, under one iperf3 TCP flow for 3 s: CUBIC fills the queue, the tbf drops, TCP retransmits. How much
    varies widely run to run on a loaded 2-CPU machine (4,859 to 21,637 segments in three runs, a few % to most
    of the ~25,000 sent), and exceeds the tbf's drops: a dropped GSO packet is several segments.
    Count: iperf3's own sum_sent.retransmits (tcpi_total_retrans of its data socket, segments like
    TcpRetransSegs). Not counted there: the control connection's retransmits, if one of its few segments meets a
    full queue (0 to 5 measured)."""
    with _pair("gcls6") as (snd, rcv):
        snd.run(["tc", "qdisc", "replace", "dev", "gc0", "root", "tbf", *_flat(TBF_TCP)])

        def induce() -> Induced:
            client, _ = _iperf3(snd, rcv, ("-t", str(TCP_SECONDS)))
            sent = client["end"]["sum_sent"]
            return Induced(int(sent["retransmits"]), "iperf3: sum_sent.retransmits (tcp_info)",
                           {"bytes_sent": int(sent["bytes"])})

        yield Scenario("tcp-retrans", "shaped path, tbf short queue, iperf3 TCP", snd, "tcp", "TcpRetransSegs",
                       "TCP-RETRANSMITS", TCP_SECONDS + 1.0, induce, where="sender")


def _flat(params: Dict[str, str]) -> List[str]:
    return [word for pair in params.items() for word in pair]


SCENARIOS: Dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "qdisc-drops": qdisc_drops,
    "udp-rcvbuf": udp_rcvbuf_errors,
    "udp-noport": udp_no_ports,
    "listen-overflow": listen_overflows,
    "rp-filter": rp_filter_drops,
    "tcp-retrans": tcp_retransmits,
}


# -- doctor around the traffic -----------------------------------------------------------------------------------

@dataclass
class Measured:
    induced: Induced
    doc: Optional[dict]           # doctor's JSON (None when it printed none)
    window: float                 # the --sample given
    inside: bool                  # the traffic ended before doctor's window could close
    kernel_total: int             # the counter by tc -s / nstat -a at the end (fresh namespaces: since 0)
    error: str = ""


def doctor_popen(ns: Netns, *args: str) -> subprocess.Popen:
    """This checkout's `guestcheck` started inside `ns` (tests.netns.guestcheck_in, without waiting)."""
    return ns.popen([sys.executable, "-m", "guestcheck", *args], env=_env(), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)


@functools.lru_cache(maxsize=1)
def _startup() -> float:
    """Wall time of doctor --sample 0 here: how long before its window opens, at most."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "guestcheck", "doctor", "--json", "--sample", "0"], env=_env(),
                   capture_output=True, check=False, timeout=60)
    return time.monotonic() - start


def measure(s: Scenario, *, margin: float = 2.0) -> Measured:
    """doctor --json --sample S in the doctor namespace; the traffic starts `lead` seconds after doctor does
    (its first reading is taken before then) and S leaves `margin` seconds after the traffic's expected end."""
    lead = 1.0 + 2 * _startup()
    window = float(int(lead + s.seconds + margin + 0.999))
    doctor = doctor_popen(s.doctor_ns, "doctor", "--json", "--sample", f"{window:g}")
    with _process(doctor):
        started = time.monotonic()
        time.sleep(lead)
        induced = s.induce()
        inside = doctor.poll() is None and time.monotonic() - started < window
        stdout, stderr = doctor.communicate(timeout=window + 120)
    total = kernel_total(s)
    try:
        doc = json.loads(stdout)
        error = ""
    except ValueError:
        doc, error = None, f"doctor printed no JSON (exit {doctor.returncode}): {stderr.strip()[-300:]}"
    return Measured(induced, doc, window, inside, total, error)


def ledger_row(s: Scenario, doc: Optional[dict]) -> Optional[dict]:
    """The ledger row of the scenario's counter (for a qdisc, on its device and of its kind), whatever layer it
    is filed under (the caller compares that); the one that rose most when several match."""
    if not doc or not isinstance(doc.get("ledger"), dict):
        return None
    rows = [r for r in doc["ledger"].get("rows", []) if r.get("counter") == s.counter
            and (s.device is None or r.get("device") == s.device)
            and (s.kind is None or str(r.get("detail", "")).split(" ")[0] == s.kind)]
    return max(rows, key=lambda r: r.get("rise") or 0, default=None)


# -- the roles, run inside a namespace -----------------------------------------------------------------------------

def _udp_send_role(src: str, dst: str, port: str, count: str, size: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if src != "-":
        sock.bind((src, 0))
    payload, sent = b"g" * int(size), 0
    for _ in range(int(count)):
        try:
            sock.sendto(payload, (dst, int(port)))
            sent += 1
        except OSError:
            pass
    print(json.dumps({"sent": sent}), flush=True)


def _udp_recv_role(addr: str, port: str, rcvbuf: str) -> None:
    """Bind with a tiny receive buffer, read nothing until told, then drain what the queue kept."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(rcvbuf))
    sock.bind((addr, int(port)))
    print("ready", flush=True)
    sys.stdin.readline()
    sock.setblocking(False)
    received = 0
    while select.select([sock], [], [], 0.3)[0]:
        try:
            while True:
                sock.recv(65536)
                received += 1
        except BlockingIOError:
            pass
    print(json.dumps({"received": received}), flush=True)


def _listen_role(addr: str, port: str, backlog: str) -> None:
    """Listen and never accept, until stdin closes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, int(port)))
    sock.listen(int(backlog))
    print("ready", flush=True)
    sys.stdin.read()


def _connect_flood_role(dst: str, port: str, prefill: str, count: str, wait: str) -> None:
    """Fill the accept queue with `prefill` connections, then `count` non-blocking connects held `wait` s."""
    held = [socket.create_connection((dst, int(port)), timeout=5) for _ in range(int(prefill))]
    time.sleep(0.2)
    flood = []
    for _ in range(int(count)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((dst, int(port)))
        flood.append(sock)
    time.sleep(float(wait))
    established = 0
    for sock in flood:
        try:
            sock.getpeername()
            established += 1
        except OSError:
            pass
    print(json.dumps({"connects": len(flood), "established": established, "prefilled": len(held)}), flush=True)
    for sock in flood + held:
        sock.close()  # a SYN_SENT socket closes without a packet


ROLES: Dict[str, Callable[..., None]] = {
    "udp-send": _udp_send_role, "udp-recv": _udp_recv_role, "listen": _listen_role,
    "connect-flood": _connect_flood_role,
}

if __name__ == "__main__":
    ROLES[sys.argv[1]](*sys.argv[2:])
