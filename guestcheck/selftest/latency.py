"""The latency verdict (pure): what the queue costs while the link is busy, and where the queue is.

The round trip is probed idle, before the runs, and loaded, during every run (guestcheck.selftest.rttprobe). The
added latency is loaded minus idle, percentile by percentile; the worse direction's added p90 is held against the
target (30 ms unless --latency-target says otherwise). Over it, the causes come from what was read beside the runs
(guestcheck.selftest.backlog: the qdisc whose backlog grew, with its limit in ms at its rate), the NIC's rings (from
doctor's facts) and the congestion control the sender used: BBR paces at the bottleneck's rate and keeps the queue
short; CUBIC and Reno grow their window until the queue overflows, so the delay they add is the whole queue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from guestcheck.selftest import errors
from guestcheck.selftest.backlog import QueueTrace
from guestcheck.selftest.rttprobe import RATE_PER_S, Samples, Target
from guestcheck.text import shell_word

DEFAULT_TARGET_MS = 30.0
PERCENTILES = (50, 90, 99)
GREW_BYTES = 3028  # two full-size frames: a queue that holds less than that is not a queue worth naming
SHORT_QUEUE_MS = 5  # what the fix shortens a queue to
FRAME_BYTES = 1514  # a packet-limited queue's limit, converted to bytes
QUEUE_FILLERS = ("cubic", "reno", "htcp", "bic", "highspeed", "illinois", "scalable")
LABELS = {"within": "within target", "over": "over target", "no-probe": "not measured: no port answered"}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, interpolated between the closest ranks (numpy's default, "linear")."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def stats(samples: Samples) -> Dict[str, Any]:
    """count, sent, lost and p50/p90/p99 (ms, None without a sample) of one phase."""
    out: Dict[str, Any] = {"count": len(samples.rtts_ms), "sent": samples.sent, "lost": samples.lost}
    for q in PERCENTILES:
        out[f"p{q}_ms"] = round(percentile(samples.rtts_ms, q), 3) if samples.rtts_ms else None
    return out


def pooled(parts: Sequence[Samples]) -> Samples:
    out = Samples()
    for s in parts:
        out.rtts_ms += s.rtts_ms
        out.sent += s.sent
        out.lost += s.lost
        out.seconds += s.seconds
    return out


def added(loaded: Dict[str, Any], idle: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """Loaded minus idle, percentile by percentile, at least 0: a loaded percentile under the idle one is the
    noise of probes taken at other moments (a scheduler's hiccup while idle), not latency the load took away."""
    out: Dict[str, Optional[float]] = {}
    for q in PERCENTILES:
        a, b = loaded.get(f"p{q}_ms"), idle.get(f"p{q}_ms")
        out[f"p{q}_ms"] = max(round(a - b, 3), 0.0) if a is not None and b is not None else None
    return out


@dataclass
class LoadedRun:
    """One iperf3 run's probes and queues."""

    direction: str
    streams: int
    samples: Samples
    queues: List[QueueTrace]
    throughput_bps: float
    congestion: str = ""  # the sender's, as iperf3 reported it ("" when it did not)


@dataclass
class Rings:
    """The NIC's descriptor rings (doctor's facts), for the interface towards the peer."""

    interface: str
    tx: int
    rx: int
    tx_max: int
    rx_max: int


@dataclass
class Cause:
    cause: str
    subject: str
    evidence: str
    fix: str

    def to_dict(self) -> Dict[str, str]:
        return {"cause": self.cause, "subject": self.subject, "evidence": self.evidence, "fix": self.fix}


@dataclass
class LatencyResult:
    target: Optional[Target]
    tried: List[str]
    target_ms: float
    idle: Optional[Samples] = None
    runs: List[LoadedRun] = field(default_factory=list)
    causes: List[Cause] = field(default_factory=list)
    problem: str = ""  # backlog readings that failed

    @property
    def measured(self) -> bool:
        return self.target is not None and self.idle is not None and bool(self.idle.rtts_ms)

    def loaded_by_direction(self) -> Dict[str, Samples]:
        out: Dict[str, List[Samples]] = {}
        for run in self.runs:
            out.setdefault(run.direction, []).append(run.samples)
        return {d: pooled(parts) for d, parts in out.items()}

    def added_by_direction(self) -> Dict[str, Dict[str, Optional[float]]]:
        idle = stats(self.idle) if self.idle is not None else {}
        return {d: added(stats(s), idle) for d, s in self.loaded_by_direction().items()}

    def deciding(self) -> Optional[tuple]:
        """(direction, added p90) of the worse direction, or None without a loaded sample."""
        worst = [(d, a["p90_ms"]) for d, a in self.added_by_direction().items() if a["p90_ms"] is not None]
        return max(worst, key=lambda x: x[1]) if worst else None

    @property
    def key(self) -> str:
        if not self.measured:
            return "no-probe"
        worst = self.deciding()
        return "over" if worst is not None and worst[1] > self.target_ms else "within"

    @property
    def exit_code(self) -> int:
        return {"within": errors.NEAR, "over": errors.LATENCY, "no-probe": errors.NO_PROBE}[self.key]


# --- causes ---------------------------------------------------------------------------------------------------------
def _fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB" if n >= 1e3 else f"{n:.0f} B"


def drain_rate(q: QueueTrace, throughput_bps: float) -> Optional[float]:
    """Bytes per second the queue empties at: its own shaping rate, else what the run carried."""
    if q.rate_bytes_per_s:
        return float(q.rate_bytes_per_s)
    return throughput_bps / 8 if throughput_bps > 0 else None


def limit_bytes(q: QueueTrace) -> Optional[int]:
    if q.limit is None:
        return None
    return q.limit if q.limit_unit == "bytes" else q.limit * FRAME_BYTES


def ms_at(n_bytes: Optional[float], rate: Optional[float]) -> Optional[float]:
    return round(n_bytes / rate * 1000, 3) if n_bytes is not None and rate else None


def grown(q: QueueTrace) -> float:
    """How much the queue held during the run beyond what it held before (the median reading)."""
    return (median(q.during_bytes) if q.during_bytes else 0.0) - q.before_bytes


def growing_queue(runs: Sequence[LoadedRun]) -> Optional[tuple]:
    """(the run, the qdisc) whose backlog grew most, over the runs of one direction; None if none grew."""
    best = None
    for run in runs:
        for q in run.queues:
            g = grown(q)
            if g >= GREW_BYTES and (best is None or g > best[2]):
                best = (run, q, g)
    return (best[0], best[1]) if best else None


def queue_summary(q: QueueTrace, throughput_bps: float) -> Dict[str, Any]:
    rate = drain_rate(q, throughput_bps)
    mid = median(q.during_bytes) if q.during_bytes else 0.0
    return {**q.to_dict(), "median_bytes": round(mid), "max_bytes": max(q.during_bytes, default=0),
            "median_ms": ms_at(mid, rate), "limit_bytes": limit_bytes(q), "limit_ms": ms_at(limit_bytes(q), rate),
            "drain_bytes_per_s": rate}


def _where(q: QueueTrace) -> str:
    return "root" if q.parent == "root" else f"parent {q.parent}"


def shorter_queue_fix(q: QueueTrace, rate: Optional[float]) -> str:
    """The command that shortens this qdisc's queue to SHORT_QUEUE_MS, for the kinds that have a limit to set."""
    dev = shell_word(q.device)
    if q.kind == "tbf" and q.rate_bytes_per_s:
        burst = f" burst {q.burst_bytes}" if q.burst_bytes else ""
        return (f"tc qdisc change dev {dev} {_where(q)} handle {q.handle} tbf rate {q.rate_bytes_per_s * 8}bit"
                f"{burst} latency {SHORT_QUEUE_MS}ms")
    if q.kind in ("pfifo", "bfifo") and rate:
        size = max(2, round(rate * SHORT_QUEUE_MS / 1000 / (FRAME_BYTES if q.kind == "pfifo" else 1)))
        return f"tc qdisc change dev {dev} {_where(q)} handle {q.handle} {q.kind} limit {size}"
    if q.kind == "pfifo_fast" and rate:
        return f"ip link set dev {dev} txqueuelen {max(2, round(rate * SHORT_QUEUE_MS / 1000 / FRAME_BYTES))}"
    return f"give {q.kind} on {dev} a shorter limit (about {SHORT_QUEUE_MS} ms at its rate)"


PROFILE_FIX = "guestcheck tune apply latency"


def queue_cause(direction: str, runs: Sequence[LoadedRun]) -> Cause:
    found = growing_queue(runs)
    if found is None:
        sender = "this machine" if direction == "upload" else "the peer"
        return Cause("the queue is not in this machine's qdiscs", direction,
                     f"no qdisc here held more than {_fmt_bytes(GREW_BYTES)} during the {direction} runs: the queue "
                     f"is at the bottleneck further on (the peer, the host, a router or a NIC ring); {sender} sends",
                     "run `guestcheck selftest` on the peer towards this machine, and shorten the queue where the "
                     "bottleneck is" if direction == "download" else
                     "shorten the queue at the bottleneck (a shaper on the host or a router on the path)")
    run, q = found
    s = queue_summary(q, run.throughput_bps)
    rate = s["drain_bytes_per_s"]
    at = f"{rate * 8 / 1e6:.1f} Mbit/s" if rate else "an unknown rate"
    limit = (f"; its limit {_fmt_bytes(s['limit_bytes'])} is {s['limit_ms']:.1f} ms at {at}"
             if s["limit_ms"] is not None else "")
    held = f" ({s['median_ms']:.1f} ms)" if s["median_ms"] is not None else ""
    return Cause(f"a full queue: {q.kind} on {q.device}", f"{q.device} {q.kind} {q.handle} {q.parent}",
                 f"its backlog grew from {_fmt_bytes(q.before_bytes)} to a median of {_fmt_bytes(s['median_bytes'])}"
                 f"{held}, at most {_fmt_bytes(s['max_bytes'])}, during the {direction} run with {run.streams} "
                 f"stream{'s' if run.streams != 1 else ''}{limit}",
                 f"{shorter_queue_fix(q, rate)}; or `{PROFILE_FIX}` (fq with BBR)")


def congestion_cause(direction: str, runs: Sequence[LoadedRun]) -> Optional[Cause]:
    used = sorted({r.congestion for r in runs if r.congestion})
    if not used:
        return None
    sender = "this machine" if direction == "upload" else "the peer"
    fillers = [c for c in used if c in QUEUE_FILLERS]
    if fillers:
        return Cause(f"congestion control {', '.join(fillers)} fills the queue", direction,
                     f"the sender ({sender}) used {', '.join(used)}: it grows its window until the queue overflows, "
                     "so the delay it adds is the whole queue; BBR paces at the bottleneck's rate",
                     PROFILE_FIX if direction == "upload" else f"on the peer: `{PROFILE_FIX}` (BBR with fq)")
    return Cause(f"congestion control {', '.join(used)}", direction,
                 f"the sender ({sender}) used {', '.join(used)}, which keeps queues short: what is left is the "
                 "queue's own length", "")


def rings_cause(rings: Optional[Rings]) -> Optional[Cause]:
    if rings is None or not (rings.tx or rings.rx):
        return None
    return Cause(f"NIC rings on {rings.interface}", rings.interface,
                 f"tx {rings.tx} of at most {rings.tx_max}, rx {rings.rx} of at most {rings.rx_max} descriptors: a "
                 "full TX ring queues below the qdiscs, where no qdisc limit reaches", "")


def judge_causes(result: LatencyResult, rings: Optional[Rings]) -> List[Cause]:
    """The causes of an added latency over the target: per direction over it, the queue and the congestion
    control; then the NIC's rings, once."""
    out: List[Cause] = []
    over = [d for d, a in result.added_by_direction().items()
            if a["p90_ms"] is not None and a["p90_ms"] > result.target_ms]
    for direction in over:
        runs = [r for r in result.runs if r.direction == direction]
        out.append(queue_cause(direction, runs))
        cc = congestion_cause(direction, runs)
        if cc is not None:
            out.append(cc)
    ring = rings_cause(rings) if over else None
    if ring is not None:
        out.append(ring)
    return out


def to_dict(result: LatencyResult) -> Dict[str, Any]:
    """selftest/1's `latency` section."""
    idle = stats(result.idle) if result.idle is not None else None
    probe = {"method": result.target.method, "address": result.target.address, "port": result.target.port} \
        if result.target is not None else None
    loaded = {d: stats(s) for d, s in result.loaded_by_direction().items()}
    runs = []
    for run in result.runs:
        s = stats(run.samples)
        found = growing_queue([run])
        runs.append({"direction": run.direction, "streams": run.streams, **s,
                     "added": added(s, idle) if idle else None, "congestion": run.congestion or None,
                     "queue": queue_summary(found[1], run.throughput_bps) if found else None})
    worst = result.deciding()
    return {
        "probe": probe, "tried": result.tried, "rate_per_s": RATE_PER_S if probe is not None else None,
        "target_ms": result.target_ms,
        "idle": idle, "loaded": loaded, "added": result.added_by_direction() if idle else {},
        "runs": runs,
        "verdict": {"key": result.key, "label": LABELS[result.key],
                    "direction": worst[0] if worst else None, "added_p90_ms": worst[1] if worst else None},
        "causes": [c.to_dict() for c in result.causes],
        "problem": result.problem or None,
    }
