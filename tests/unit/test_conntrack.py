"""Conntrack: the stat file read by column name across kernel layouts, the fill and drop checks, the metrics."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

from guestcheck.checks import catalog
from guestcheck.checks import conntrack as check
from guestcheck.collect.conntrack import collect_conntrack, parse_conntrack_stat
from guestcheck.collect.counters import CounterReading, CounterSample
from guestcheck.facts import Conntrack, Facts, facts_from_dict
from guestcheck.findings import Severity, Status
from guestcheck.render import prometheus
from guestcheck.report import Report
from tests.fakemachine import FakeMachine
from tests.judged import with_recorded
from tests.unit.test_prometheus import parse

# Linux 6.x header (net/netfilter/nf_conntrack_standalone.c ct_cpu_seq_show), as this machine prints it.
HEADER_6 = ("entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop "
            "icmp_error  expect_new expect_create expect_delete search_restart")
# Linux 4.x: searched and delete_list where 6.x has clashres and chainlength; the judged columns moved too.
HEADER_4 = ("entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop "
            "icmp_error  expect_new expect_create expect_delete search_restart")


def stat(header: str, rows: list[dict[str, int]]) -> str:
    names = header.split()
    return header + "\n" + "\n".join(" ".join(f"{r.get(n, 0):08x}" for n in names) for r in rows) + "\n"


def reading(t: float, text: Optional[str]) -> CounterReading:
    return CounterReading(monotonic=t, proc_stat=None, softnet_stat=None, softirqs=None, interrupts=None,
                          conntrack_stat=text)


def machine(tmp_path: Path, count: int = 10, limit: int = 100, cpus: str = "0-1") -> FakeMachine:
    m = FakeMachine(tmp_path)
    m.write("proc/sys/net/netfilter/nf_conntrack_count", f"{count}\n")
    m.write("proc/sys/net/netfilter/nf_conntrack_max", f"{limit}\n")
    m.write("proc/sys/net/netfilter/nf_conntrack_buckets", "1024\n")
    m.write("sys/devices/system/cpu/possible", cpus + "\n")
    return m


def test_columns_are_read_by_name_in_both_layouts():
    for header in (HEADER_6, HEADER_4):
        columns, rows = parse_conntrack_stat(stat(header, [{"drop": 5, "early_drop": 2, "insert_failed": 0xff}]))
        assert columns == header.split()
        assert (rows[0]["drop"], rows[0]["early_drop"], rows[0]["insert_failed"]) == (5, 2, 255)
    # a 4.x-only column lands under its own name, not shifted into a judged one
    _, rows = parse_conntrack_stat(stat(HEADER_4, [{"delete_list": 7}]))
    assert rows[0]["delete_list"] == 7 and rows[0]["drop"] == 0


def test_damaged_rows_are_left_out():
    text = HEADER_6 + "\n00000001 zz\n" + "0000000g " * 17 + "\n"
    assert parse_conntrack_stat(text) == (HEADER_6.split(), [])
    assert parse_conntrack_stat(None) == ([], [])


def test_collector_sums_cpus_and_names_the_cpu_that_dropped(tmp_path):
    m = machine(tmp_path)
    before = stat(HEADER_6, [{"drop": 1}, {"drop": 4, "insert_failed": 2}])
    after = stat(HEADER_6, [{"drop": 1}, {"drop": 9, "insert_failed": 2, "early_drop": 1}])
    ct = collect_conntrack(m.roots, CounterSample(reading(0, before), reading(2, after)))
    assert (ct.loaded, ct.count, ct.max, ct.buckets) == (True, 10, 100, 1024)
    assert ct.since_boot == {"drop": 10, "early_drop": 1, "insert_failed": 2}
    assert ct.in_sample == {"drop": 5, "early_drop": 1, "insert_failed": 0}
    assert ct.per_cpu_in_sample == {"cpu1": {"drop": 5, "early_drop": 1}}


def test_32_bit_counters_wrap(tmp_path):
    m = machine(tmp_path, cpus="0")
    ct = collect_conntrack(m.roots, CounterSample(reading(0, stat(HEADER_6, [{"drop": 0xFFFFFFFE}])),
                                                  reading(1, stat(HEADER_6, [{"drop": 3}]))))
    assert ct.in_sample["drop"] == 5


def test_not_loaded_without_the_sysctl(tmp_path):
    m = FakeMachine(tmp_path)
    facts = m.collect()
    assert facts.conntrack == Conntrack(loaded=False)
    [f] = check.run(*with_recorded(facts))
    assert (f.id, f.severity) == ("CONNTRACK-NOT-LOADED", Severity.OK)


def test_full_collection_from_a_fake_tree_round_trips_through_json(tmp_path):
    m = machine(tmp_path, count=85, limit=100, cpus="0")
    m.write("proc/net/stat/nf_conntrack", stat(HEADER_6, [{"early_drop": 3}]))
    facts = m.collect()
    assert facts.conntrack.since_boot == {"drop": 0, "early_drop": 3, "insert_failed": 0}
    again = facts_from_dict(json.loads(json.dumps(facts.to_dict())))
    assert again.conntrack == facts.conntrack
    ids = {(f.id, f.severity) for f in check.run(*with_recorded(again))}
    assert ids == {("CONNTRACK-TABLE-FULL", Severity.WARNING), ("CONNTRACK-DROPS", Severity.WARNING)}


def facts_with(**kw) -> Facts:
    return Facts(conntrack=Conntrack(loaded=True, **kw))


def test_eighty_percent_is_a_warning_with_a_pasteable_sysctl_fix():
    [f] = check.run(*with_recorded(facts_with(count=52, max=64)))
    assert (f.id, f.severity, f.subject) == ("CONNTRACK-TABLE-FULL", Severity.WARNING, "conntrack")
    assert f.evidence["count"] == 52 and f.evidence["max"] == 64
    assert f.fix.split("\n") == [
        "sysctl -w net.netfilter.nf_conntrack_max=128",
        "cat > /etc/sysctl.d/90-guestcheck-conntrack.conf <<'EOF'", "net.netfilter.nf_conntrack_max = 128", "EOF",
        "cat > /etc/modules-load.d/guestcheck-conntrack.conf <<'EOF'", "nf_conntrack", "EOF"]
    [ok] = check.run(*with_recorded(facts_with(count=51, max=64)))  # 79.7 %: doctor -v shows the area was checked
    assert (ok.id, ok.severity, ok.summary) == ("CONNTRACK-OK", Severity.OK,
                                                "conntrack table 79% full (51 of 64 entries), no drops")


def test_new_max_is_a_power_of_two_at_least_double():
    assert check.new_max(Conntrack(loaded=True, count=200000, max=262144)) == 524288
    assert check.new_max(Conntrack(loaded=True, count=100, max=100)) == 256
    assert check.new_max(Conntrack(loaded=True, count=0, max=0)) == 1024


def test_drops_rising_in_the_sample_are_critical():
    facts = facts_with(count=1, max=64, in_sample={"drop": 0, "early_drop": 0, "insert_failed": 4},
                       since_boot={"drop": 0, "early_drop": 0, "insert_failed": 9},
                       per_cpu_in_sample={"cpu0": {"insert_failed": 4}})
    [f] = check.run(*with_recorded(facts))
    assert (f.id, f.severity) == ("CONNTRACK-DROPS", Severity.CRITICAL)
    assert "insert_failed +4" in f.summary and f.evidence["per_cpu_in_sample"] == {"cpu0": {"insert_failed": 4}}
    assert f.fix.startswith("sysctl -w net.netfilter.nf_conntrack_max=128\n")


def test_drops_since_boot_only_warning_for_a_full_table_info_for_races():
    quiet = {"drop": 0, "early_drop": 0, "insert_failed": 0}
    [f] = check.run(*with_recorded(facts_with(count=1, max=64, in_sample=quiet,
                               since_boot={"drop": 2, "early_drop": 0, "insert_failed": 0})))
    assert (f.id, f.severity) == ("CONNTRACK-DROPS", Severity.WARNING)
    [f] = check.run(*with_recorded(facts_with(count=1, max=64, in_sample=quiet,
                               since_boot={"drop": 0, "early_drop": 0, "insert_failed": 3})))
    assert (f.id, f.severity) == ("CONNTRACK-DROPS", Severity.INFO)
    quiet_facts = facts_with(count=1, max=64, in_sample=quiet, since_boot=quiet)
    assert [f.id for f in check.run(*with_recorded(quiet_facts))] == ["CONNTRACK-OK"]


def test_every_id_is_explained():
    docs = catalog()
    for fid in ("CONNTRACK-TABLE-FULL", "CONNTRACK-DROPS", "CONNTRACK-NOT-LOADED"):
        assert docs[fid].why and docs[fid].fix and docs[fid].title


def test_prometheus_gauges_and_counters():
    facts = dataclasses.replace(facts_with(count=7, max=64, since_boot={"drop": 3, "early_drop": 1,
                                                                         "insert_failed": 0}),
                                collected_at="2026-11-26T12:00:00+00:00")
    text = prometheus.render(Report(facts, [], Status.OK))
    samples = {name: value for name, labels, value in parse(text) if name.startswith("guestcheck_conntrack")}
    assert samples == {"guestcheck_conntrack_entries": 7, "guestcheck_conntrack_max": 64,
                       "guestcheck_conntrack_drop_total": 3, "guestcheck_conntrack_early_drop_total": 1,
                       "guestcheck_conntrack_insert_failed_total": 0}
    assert "# TYPE guestcheck_conntrack_drop_total counter" in text
    assert "# TYPE guestcheck_conntrack_max gauge" in text
    # no conntrack: no series at all rather than zeros that look like a healthy table
    unloaded = dataclasses.replace(facts, conntrack=Conntrack(loaded=False))
    assert "conntrack" not in prometheus.render(Report(unloaded, [], Status.OK))
