"""CPU steal over the sample: the share of time a vCPU wanted to run while the host ran something else.

Computed from the two /proc/stat readings in the CounterSample, per CPU and over all CPUs, from the CPUs present
in both readings. A CPU that went offline (its line vanished) or came online between them is left out and named,
so the totals never mix a CPU's counters with nothing. The aggregate "cpu" line is not used for the interval: it
switches an offline CPU's idle time to another source and can step backwards, which per-CPU sums do not.
A u64 counter that wraps is counted across the wrap; one that steps backwards (seen with iowait/idle under
NO_HZ and with steal after a live migration) makes that CPU's interval unusable, and a note says so.
"""

from __future__ import annotations

from typing import Optional

from guestcheck.collect.area import Run
from guestcheck.collect.counters import CounterSample, counter_delta
from guestcheck.facts import CpuSteal
from guestcheck.quantities import maybe_int, parse_int

FIELDS = 8  # user nice system idle iowait irq softirq steal; guest and guest_nice are already in user/nice
STEAL = 7
_WRAP_SLACK = 1 << 32  # a real u64 wrap lands just past zero; anything larger is a counter going backwards


def parse_proc_stat(text: Optional[str]) -> dict[str, list[int]]:
    """"cpu" and "cpuN" lines -> their first eight tick counters."""
    out: dict[str, list[int]] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if not parts or not parts[0].startswith("cpu"):
            continue
        try:
            values = [parse_int(v) for v in parts[1 : FIELDS + 1]]
        except ValueError:
            continue
        out[parts[0]] = values + [0] * (FIELDS - len(values))  # old kernels print fewer fields
    return out


def tick_delta(before: int, after: int) -> Optional[int]:
    """Ticks between readings across a u64 wrap; None when the counter went backwards."""
    delta = counter_delta(before, after, width=64)
    return delta if after >= before or delta < _WRAP_SLACK else None


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2)


def measure_steal(sample: CounterSample) -> Optional[CpuSteal]:
    """Steal over the sample, or None when /proc/stat could not be read at all."""
    before = parse_proc_stat(sample.before.proc_stat)
    after = parse_proc_stat(sample.after.proc_stat)
    if not after:
        return None
    result = CpuSteal(seconds=round(sample.seconds, 3))
    total_line = after.get("cpu")
    if total_line and sum(total_line):
        result.since_boot_percent = _percent(total_line[STEAL], sum(total_line))
    per_cpu_before = {k: v for k, v in before.items() if k != "cpu"}
    per_cpu_after = {k: v for k, v in after.items() if k != "cpu"}
    result.changed_cpus = sorted(set(per_cpu_before) ^ set(per_cpu_after), key=_cpu_number)
    if result.changed_cpus:
        result.notes.append(f"{', '.join(result.changed_cpus)} went offline or came online during the sample")
    pairs = {k: (per_cpu_before[k], per_cpu_after[k]) for k in per_cpu_before if k in per_cpu_after}
    if not pairs and "cpu" in before and "cpu" in after:
        pairs = {"cpu": (before["cpu"], after["cpu"])}  # no per-CPU lines: the aggregate is all there is
    steal_sum = ticks_sum = 0
    for name in sorted(pairs, key=_cpu_number):
        old, new = pairs[name]
        deltas = [tick_delta(b, a) for b, a in zip(old, new)]
        if any(d is None for d in deltas):
            result.notes.append(f"{name}: counters went backwards, left out of the sample")
            continue
        ticks = sum(d for d in deltas if d is not None)
        if ticks <= 0:
            continue
        steal = deltas[STEAL] or 0
        if name != "cpu":
            result.per_cpu[name] = _percent(steal, ticks)
        steal_sum += steal
        ticks_sum += ticks
    if ticks_sum:
        result.percent = _percent(steal_sum, ticks_sum)
    return result


def _cpu_number(name: str) -> int:
    number = maybe_int(name[3:], max_digits=6)
    return -1 if number is None else number


AREA = "cpu_steal"
SAMPLED = True


def collect(run: Run) -> Optional[CpuSteal]:
    return measure_steal(run.counters)
