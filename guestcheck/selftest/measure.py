"""The latency phase's sequence: choose a probe port, probe idle, then probe and read the qdiscs beside each run.

session.py calls `start` before the first iperf3 run and `Loaded.start/stop` around every run; latency.py judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from guestcheck.selftest.backlog import BacklogWatch
from guestcheck.selftest.iperf3 import RunResult
from guestcheck.selftest.latency import DEFAULT_TARGET_MS, LatencyResult, LoadedRun
from guestcheck.selftest.rttprobe import Prober, choose_target

IDLE_SECONDS = 1.0  # 25 probes; kept short, the runs wait for it


@dataclass(frozen=True)
class LatencyPlan:
    target_ms: float = DEFAULT_TARGET_MS
    probe_port: Optional[int] = None  # tcp-rst: default the iperf3 port + 1
    echo_port: Optional[int] = None  # udp-echo of `selftest --serve`: default the iperf3 port + 1
    idle_seconds: float = IDLE_SECONDS


def start(address: str, iperf3_port: int, plan: LatencyPlan) -> LatencyResult:
    """Choose the port, then the idle phase. A result with no target when no port answered."""
    choice = choose_target(address, iperf3_port, plan.probe_port, plan.echo_port)
    result = LatencyResult(choice.target, choice.tried, plan.target_ms)
    if choice.target is not None:
        result.idle = Prober(choice.target).run_for(plan.idle_seconds)
    return result


class Loaded:
    """The probes and the backlog readings of one run."""

    def __init__(self, result: LatencyResult, direction: str, streams: int,
                 watch: Callable[[], BacklogWatch] = BacklogWatch) -> None:
        assert result.target is not None
        self.result, self.direction, self.streams = result, direction, streams
        self.prober = Prober(result.target)
        self.watch = watch()

    def start(self) -> Loaded:
        self.watch.start()
        self.prober.start()
        return self

    def stop(self, run: Optional[RunResult]) -> None:
        """Stop both; keep what they saw when the run finished (a failed run's probes judge nothing)."""
        samples = self.prober.stop(wait=run is not None)
        queues = self.watch.stop()
        if self.watch.problem:
            self.result.problem = self.watch.problem
        if run is not None:
            self.result.runs.append(LoadedRun(self.direction, self.streams, samples, queues, run.throughput_bps,
                                              run.congestion))
