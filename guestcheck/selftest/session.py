"""One selftest: resolve the peer, settle the expected rate, run iperf3 in each direction and stream
count, sample the connect round trip, judge, and ask doctor why when the result is slow."""

from __future__ import annotations

import datetime
import functools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from guestcheck.selftest import errors
from guestcheck.selftest.errors import SelftestError
from guestcheck.selftest.iperf3 import DOWNLOAD, UPLOAD, RunResult, RunSpec, find_iperf3, run_client
from guestcheck.selftest.latency import LatencyResult, Rings, judge_causes
from guestcheck.selftest.measure import LatencyPlan, Loaded
from guestcheck.selftest.measure import start as start_latency
from guestcheck.selftest.peer import Peer, resolve
from guestcheck.selftest.probe import ConnectRtt, connect_rtt
from guestcheck.selftest.progress import Progress
from guestcheck.selftest.route import egress_interface, has_route
from guestcheck.selftest.rttprobe import TCP_RST
from guestcheck.selftest.verdict import Cause, Verdict, judge_runs, likely_causes

BUSY_RETRY_SECONDS = 0.5
# iperf3's server closes its listening socket when a test ends and opens a new one only after it has written
# that test's results (cleanup_server, then iperf_run_server again): a run started at once may be refused.
REOPEN_SECONDS = 3.0
REOPEN_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Plan:
    peer: Peer
    duration: int = 5
    parallel: int = 4
    directions: tuple[str, ...] = (UPLOAD, DOWNLOAD)
    timeout: float = 10.0
    expect_bps: Optional[float] = None
    latency: Optional[LatencyPlan] = None  # None: no latency phase (the CLI sets one unless --no-latency)
    congestion: str = ""  # iperf3 -C on every run; "": each end's default

    def runs(self) -> list[tuple[str, int]]:
        counts = [1] if self.parallel <= 1 else [1, self.parallel]
        return [(d, n) for d in self.directions for n in counts]


@dataclass
class Expected:
    bps: float
    source: str  # "--expect" or "nic"
    interface: Optional[str] = None  # the NIC whose speed it is, when source is "nic"


@dataclass
class Doctor:
    """What doctor said about this machine: facts (for the NIC speed) and findings (for the causes)."""

    nic_speeds_mbps: dict[str, Optional[int]] = field(default_factory=dict)
    findings: list = field(default_factory=list)
    nic_kinds: dict[str, str] = field(default_factory=dict)  # doctor's judged kind: physical, paravirtual, ...
    problem: Optional[str] = None
    rings: dict[str, Rings] = field(default_factory=dict)  # the NICs' descriptor rings, for the latency causes


def ask_doctor() -> Doctor:
    from guestcheck.collect.machine import collect_facts
    from guestcheck.doctor import build_report

    try:
        report = build_report(collect_facts(sample_seconds=0))
    except Exception as e:  # the measurement stands without doctor; say why the causes are missing
        return Doctor(problem=f"doctor could not run: {type(e).__name__}: {e}")
    nics, judged = report.facts.nics, report.verdicts
    rings = {n.name: Rings(n.name, n.rings.tx, n.rings.rx, n.rings.tx_max, n.rings.rx_max)
             for n in nics if n.rings is not None}
    return Doctor({n.name: n.speed_mbps for n in nics}, report.findings, {n.name: judged.kind(n) for n in nics},
                  rings=rings)


@dataclass
class Result:
    plan: Plan
    address: str
    iperf3_path: str
    started_at: str
    expected: Expected
    interface: Optional[str]  # the NIC on the route to the peer; None when nothing needed it
    runs: list[RunResult]
    connect_rtt: Optional[ConnectRtt]
    verdict: Verdict
    causes: list[Cause]
    other_findings: list[str]  # warning/critical doctor findings that map to no cause
    doctor_ran: bool
    doctor_problem: Optional[str]
    total_seconds: float
    latency: Optional[LatencyResult] = None

    @property
    def exit_code(self) -> int:
        """The throughput verdict's; when that is "near", the latency phase's (4 over target, 20 not measured)."""
        code = self.verdict.exit_code
        if code == errors.NEAR and self.latency is not None:
            return self.latency.exit_code
        return code


# Only these NICs report a speed that is a line rate. A veth, bridge, tap or macvlan says 10000 and virtio
# says nothing or what the host set: a nominal number, not what the path can carry.
LINE_RATE_KINDS = ("physical", "sriov-vf")


def expected_rate(plan: Plan, interface: Optional[str], doctor: Callable[[], Doctor]) -> tuple[Expected, Any]:
    """--expect wins; else the link speed of the NIC carrying the route, where it is a real line rate.
    Returns doctor's answer if asked."""
    if plan.expect_bps is not None:
        return Expected(plan.expect_bps, "--expect"), None
    told = doctor()
    speed = told.nic_speeds_mbps.get(interface) if interface else None
    kind = told.nic_kinds.get(interface) if interface else None
    if interface is None:
        why = "the interface towards the peer is unknown"
    elif kind not in LINE_RATE_KINDS:
        what = f"{'an' if (kind or 'x')[0] in 'aeiou' else 'a'} {kind} NIC" if kind else "a NIC of unknown kind"
        said = f"its nominal {speed} Mb/s is not a line rate" if speed and speed > 0 else "it reports no line rate"
        why = f"interface {interface} is {what}: {said} (only physical NICs and SR-IOV VFs report one)"
    elif not speed or speed <= 0:
        why = f"the speed of interface {interface} is unknown"
    else:
        return Expected(speed * 1e6, "nic", interface), told
    raise SelftestError(errors.EXPECT_UNKNOWN, f"{why}: pass the rate you expect, e.g. --expect 1G")


def _run_with_retry(runner: Callable[..., RunResult], binary: str, spec: RunSpec, peer: str,
                    retry_for: float) -> RunResult:
    """A run right after ours may find the server still closing the last one: retry "busy" for `retry_for`,
    and "refused" for REOPEN_SECONDS of it (the server reopens its port between tests)."""
    start = time.monotonic()
    while True:
        try:
            return runner(binary, spec, peer)
        except SelftestError as e:
            pause = {errors.BUSY: BUSY_RETRY_SECONDS, errors.REFUSED: REOPEN_POLL_SECONDS}.get(e.code)
            limit = min(retry_for, REOPEN_SECONDS) if e.code == errors.REFUSED else retry_for
            if pause is None or time.monotonic() + pause > start + limit:
                raise
        time.sleep(pause)


def run_selftest(
    plan: Plan,
    *,
    runner: Callable[..., RunResult] = run_client,
    doctor: Callable[[], Doctor] = ask_doctor,
    interface_of: Callable[[str], Optional[str]] = egress_interface,
    route_exists: Callable[[str], bool] = has_route,
    probe: Callable[..., Optional[ConnectRtt]] = connect_rtt,
    binary: Optional[str] = None,
    progress: Optional[Progress] = None,
    latency_start: Callable[..., LatencyResult] = start_latency,
    loaded: Callable[..., Any] = Loaded,
) -> Result:
    started = time.perf_counter()
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    binary = binary or find_iperf3()
    address = resolve(plan.peer, plan.timeout)
    if not route_exists(address):  # before anything else: no rate, no doctor, no iperf3 can help
        raise SelftestError(errors.UNREACHABLE, f"no route to {plan.peer.host} ({address}): the kernel has no "
                                                "route to that address from this machine")
    # pyroute2 costs most of a second to import: with --expect, ask only if the result needs explaining
    interface = interface_of(address) if plan.expect_bps is None else None
    expected, told = expected_rate(plan, interface, doctor)
    peer_label = str(plan.peer)
    session = secrets.token_hex(4)
    todo = plan.runs()
    runs: list[RunResult] = []
    # idle first: probes on their own port (never the iperf3 port), before anything loads the path
    latency = latency_start(address, plan.peer.port, plan.latency) if plan.latency is not None else None
    for index, (direction, streams) in enumerate(todo, 1):
        spec = RunSpec(address, plan.peer.port, direction, streams, plan.duration, plan.timeout,
                       f"guestcheck-selftest/1 session={session} run={index}/{len(todo)}", plan.congestion)
        run = runner if progress is None else functools.partial(runner, tick=progress.start(index, len(todo), spec))
        meter = loaded(latency, direction, streams).start() if latency is not None and latency.measured else None
        finished: Optional[RunResult] = None
        try:
            # the first run gets no retry: a server busy or closed before we start is not between our runs
            finished = _run_with_retry(run, binary, spec, peer_label, plan.timeout if runs else 0)
            runs.append(finished)
        except SelftestError as e:
            if e.code == errors.REFUSED and runs:
                e = SelftestError(e.code, f"{e.message}; the first run worked, so the server may serve one test "
                                          "only (`iperf3 -s -1`): run `iperf3 -s` or `guestcheck selftest --serve` "
                                          "there")
            e.runs = runs
            raise e from None
        finally:
            if meter is not None:
                meter.stop(finished)
            if progress is not None:
                progress.finish()
    # a bare connection to the iperf3 port is a failed test in the server's log: with a closed port found for the
    # latency probes, the connect round trips go there (a RST is one round trip as much as a SYN-ACK)
    rtt_port = latency.target.port if latency is not None and latency.target is not None \
        and latency.target.method == TCP_RST else plan.peer.port
    rtt = probe(address, rtt_port, timeout=min(plan.timeout, 2.0))
    verdict = judge_runs(runs, expected.bps)
    causes: list[Cause] = []
    other: list[str] = []
    if verdict.key != "near":
        if interface is None:  # with --expect it was not needed until now: doctor's findings are per NIC
            interface = interface_of(address)
        told = told or doctor()
        causes, other = likely_causes(told.findings, interface, told.nic_speeds_mbps.keys())
    if latency is not None and latency.key == "over":
        if interface is None:
            interface = interface_of(address)
        told = told or doctor()
        latency.causes = judge_causes(latency, told.rings.get(interface) if interface else None)
    return Result(plan, address, binary, started_at, expected, interface, runs, rtt, verdict, causes, other,
                  doctor_ran=told is not None and told.problem is None,
                  doctor_problem=told.problem if told is not None else None,
                  total_seconds=time.perf_counter() - started, latency=latency)
