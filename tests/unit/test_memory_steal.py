"""CPU steal from two /proc/stat readings: per CPU, totals, wraps, counters going backwards, CPUs coming and going."""

from __future__ import annotations

import dataclasses

import pytest

from guestcheck.checks.memory import run
from guestcheck.collect.counters import CounterReading, CounterSample
from guestcheck.collect.steal import measure_steal, parse_proc_stat, tick_delta
from guestcheck.facts import CpuSteal, Facts
from guestcheck.findings import Severity
from tests.fakemachine import FakeMachine
from tests.judged import with_recorded

U64 = 1 << 64


def reading(at: float, text: str | None) -> CounterReading:
    values = {f.name: None for f in dataclasses.fields(CounterReading)}
    values.update(monotonic=at, proc_stat=text)
    return CounterReading(**values)


def stat(**cpus: list[int]) -> str:
    """A /proc/stat with the given cpu lines (user nice system idle iowait irq softirq steal guest guest_nice)."""
    return "".join(f"{name} {' '.join(map(str, [*vals, 0, 0]))}\n" for name, vals in cpus.items()) + "intr 0\n"


def sample(before: str | None, after: str | None, seconds: float = 1.0) -> CounterSample:
    return CounterSample(reading(100.0, before), reading(100.0 + seconds, after))


def steal_finding(s: CpuSteal):
    facts = Facts(cpu_steal=s)
    return next(f for f in run(*with_recorded(facts)) if f.id == "CPU-STEAL")


def test_parse_keeps_eight_fields_and_pads_old_kernels():
    parsed = parse_proc_stat("cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 2 3 4\nintr 5\nctxt 9\n")
    assert parsed == {"cpu": [1, 2, 3, 4, 5, 6, 7, 8], "cpu0": [1, 2, 3, 4, 0, 0, 0, 0]}


def test_steal_per_cpu_and_total():
    before = stat(cpu=[200, 0, 0, 1800, 0, 0, 0, 0], cpu0=[100, 0, 0, 900, 0, 0, 0, 0],
                  cpu1=[100, 0, 0, 900, 0, 0, 0, 0])
    # cpu0: 100 ticks, 20 stolen; cpu1: 100 ticks, none stolen
    after = stat(cpu=[300, 0, 0, 1880, 0, 0, 0, 20], cpu0=[130, 0, 0, 950, 0, 0, 0, 20],
                 cpu1=[170, 0, 0, 930, 0, 0, 0, 0])
    s = measure_steal(sample(before, after))
    assert s.per_cpu == {"cpu0": 20.0, "cpu1": 0.0}
    assert s.percent == 10.0
    assert s.seconds == 1.0
    assert s.since_boot_percent == round(100 * 20 / 2200, 2)
    assert s.changed_cpus == [] and s.notes == []


def test_cpu_going_offline_between_samples_is_left_out_and_named():
    before = stat(cpu=[0, 0, 0, 2000, 0, 0, 0, 0], cpu0=[0, 0, 0, 1000, 0, 0, 0, 0],
                  cpu1=[0, 0, 0, 1000, 0, 0, 0, 0])
    # cpu1 went offline: its line is gone, and the aggregate's idle stepped backwards as the kernel switched
    # cpu1's idle source; only cpu0 (50 ticks, 5 stolen) counts.
    after = stat(cpu=[45, 0, 0, 1900, 0, 0, 0, 5], cpu0=[45, 0, 0, 1000, 0, 0, 0, 5])
    s = measure_steal(sample(before, after))
    assert s.changed_cpus == ["cpu1"]
    assert s.per_cpu == {"cpu0": 10.0}
    assert s.percent == 10.0
    assert any("cpu1" in n and "offline" in n for n in s.notes)


def test_cpu_coming_online_between_samples_is_left_out():
    before = stat(cpu0=[0, 0, 0, 1000, 0, 0, 0, 0])
    after = stat(cpu0=[0, 0, 0, 1100, 0, 0, 0, 0], cpu3=[0, 0, 0, 7, 0, 0, 0, 3])
    s = measure_steal(sample(before, after))
    assert s.changed_cpus == ["cpu3"]
    assert s.per_cpu == {"cpu0": 0.0}
    assert s.percent == 0.0


def test_u64_wrap_is_counted_across_zero():
    assert tick_delta(U64 - 10, 30) == 40
    before = stat(cpu0=[0, 0, 0, 100, 0, 0, 0, U64 - 10])
    after = stat(cpu0=[0, 0, 0, 160, 0, 0, 0, 30])  # 40 stolen of 100
    s = measure_steal(sample(before, after))
    assert s.per_cpu == {"cpu0": 40.0}
    assert s.notes == []


def test_counter_going_backwards_drops_that_cpu_with_a_note():
    assert tick_delta(1000, 990) is None
    before = stat(cpu0=[0, 0, 0, 1000, 50, 0, 0, 0], cpu1=[0, 0, 0, 1000, 0, 0, 0, 0])
    # cpu0's iowait steps back (NO_HZ accounting); cpu1 is fine: 100 ticks, 30 stolen
    after = stat(cpu0=[0, 0, 0, 1100, 40, 0, 0, 0], cpu1=[0, 0, 0, 1070, 0, 0, 0, 30])
    s = measure_steal(sample(before, after))
    assert s.per_cpu == {"cpu1": 30.0}
    assert s.percent == 30.0
    assert any(n.startswith("cpu0: counters went backwards") for n in s.notes)


def test_no_time_passed_means_unmeasured_not_zero():
    text = stat(cpu=[1, 0, 0, 9, 0, 0, 0, 0], cpu0=[1, 0, 0, 9, 0, 0, 0, 0])
    s = measure_steal(sample(text, text, seconds=0.0))
    assert s.percent is None and s.per_cpu == {}
    assert s.since_boot_percent == 0.0
    finding = steal_finding(s)
    assert finding.severity is Severity.INFO and "not measured" in finding.summary


def test_only_the_aggregate_line_is_used_when_there_are_no_per_cpu_lines():
    s = measure_steal(sample(stat(cpu=[0, 0, 0, 100, 0, 0, 0, 0]), stat(cpu=[0, 0, 0, 190, 0, 0, 0, 10])))
    assert s.percent == 10.0 and s.per_cpu == {}


def test_unreadable_proc_stat_gives_no_steal_and_an_info_finding():
    assert measure_steal(sample(None, None)) is None
    finding = steal_finding(None)
    assert finding.severity is Severity.INFO and "/proc/stat unreadable" in finding.summary


@pytest.mark.parametrize(("total", "per_cpu", "severity"), [
    (15.0, {"cpu0": 15.0}, Severity.WARNING),
    (8.0, {"cpu0": 30.0, "cpu1": 1.0, "cpu2": 1.0}, Severity.WARNING),  # one CPU starved
    (3.0, {"cpu0": 3.0}, Severity.INFO),
    (0.5, {"cpu0": 0.5}, Severity.OK),
])
def test_steal_thresholds(total, per_cpu, severity):
    finding = steal_finding(CpuSteal(seconds=1.0, percent=total, per_cpu=per_cpu))
    assert finding.severity is severity
    assert finding.evidence["percent"] == total
    if severity is Severity.WARNING:
        assert "oversold" in finding.summary and "dedicated vCPUs" in finding.fix


def test_collect_facts_measures_steal_from_the_given_sample(tmp_path):
    m = FakeMachine(tmp_path)
    before = stat(cpu0=[0, 0, 0, 100, 0, 0, 0, 0], cpu1=[0, 0, 0, 100, 0, 0, 0, 0])
    after = stat(cpu0=[0, 0, 0, 180, 0, 0, 0, 20], cpu1=[0, 0, 0, 175, 0, 0, 0, 25])
    facts = m.collect(counters=sample(before, after, seconds=0.5))
    assert facts.sample_seconds == 0.5
    assert facts.cpu_steal.per_cpu == {"cpu0": 20.0, "cpu1": 25.0}
    assert facts.cpu_steal.percent == 22.5
    finding = steal_finding(facts.cpu_steal)
    assert finding.severity is Severity.WARNING and finding.evidence["per_cpu"]["cpu1"] == 25.0
