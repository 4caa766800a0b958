"""Connection tracking: the table's fill (nf_conntrack_count / _max) and its drop counters over the sample.

/proc/net/stat/nf_conntrack has one row per possible CPU, hexadecimal, under a header line that names the
columns. The layout changed across kernels (4.x had searched and delete_list where 5.x+ has clashres and
chainlength), so columns are read by name, never by position. Its counters are per network namespace and
32-bit. Without the nf_conntrack module neither the sysctls nor the stat file exist: that is "not loaded".
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from guestcheck.collect.area import Run
from guestcheck.collect.counters import CounterSample, counter_delta
from guestcheck.collect.fs import cat, cat_int, exists
from guestcheck.cpus import cpu_list
from guestcheck.facts import Conntrack
from guestcheck.quantities import parse_int
from guestcheck.roots import Roots

JUDGED = ("drop", "early_drop", "insert_failed")


def parse_conntrack_stat(text: Optional[str]) -> Tuple[List[str], List[Dict[str, int]]]:
    """The header's column names and one {column: value} per CPU row; malformed rows are left out."""
    lines = (text or "").splitlines()
    if not lines:
        return [], []
    header = lines[0].split()
    rows = []
    for line in lines[1:]:
        cols = line.split()
        if len(cols) != len(header):
            continue
        try:
            rows.append({name: parse_int(value, base=16) for name, value in zip(header, cols)})
        except ValueError:
            continue
    return header, rows


def _cpu_names(roots: Roots, rows: int, notes: List[str]) -> List[str]:
    """Rows are the possible CPUs in order; name them so, or by row number where the counts differ."""
    possible = sorted(cpu_list(cat(os.path.join(roots.sys, "devices/system/cpu/possible"))))
    if len(possible) == rows:
        return [f"cpu{c}" for c in possible]
    if rows:
        notes.append(f"{rows} rows in nf_conntrack stats but {len(possible)} possible CPUs: rows named by position")
    return [f"row{i}" for i in range(rows)]


def collect_conntrack(roots: Roots, sample: CounterSample) -> Conntrack:
    base = os.path.join(roots.proc, "sys/net/netfilter")
    if not exists(os.path.join(base, "nf_conntrack_max")):
        return Conntrack(loaded=False)
    ct = Conntrack(
        loaded=True,
        count=cat_int(os.path.join(base, "nf_conntrack_count")),
        max=cat_int(os.path.join(base, "nf_conntrack_max")),
        buckets=cat_int(os.path.join(base, "nf_conntrack_buckets")),
    )
    columns, after = parse_conntrack_stat(sample.after.conntrack_stat)
    _, before = parse_conntrack_stat(sample.before.conntrack_stat)
    ct.columns = columns
    if not columns:
        ct.notes.append(f"{roots.proc}/net/stat/nf_conntrack is not readable")
        return ct
    judged = [c for c in JUDGED if c in columns]
    missing = [c for c in JUDGED if c not in columns]
    if missing:
        ct.notes.append("this kernel's nf_conntrack stats have no " + ", ".join(missing))
    ct.since_boot = {c: sum(row[c] for row in after) for c in judged}
    if len(before) != len(after):
        ct.notes.append("the CPU rows changed between the two readings: no rates")
        return ct
    names = _cpu_names(roots, len(after), ct.notes)
    ct.in_sample = {c: 0 for c in judged}
    for name, b, a in zip(names, before, after):
        rose = {c: counter_delta(b[c], a[c]) for c in judged}
        for c, d in rose.items():
            ct.in_sample[c] += d
        if any(rose.values()):
            ct.per_cpu_in_sample[name] = {c: d for c, d in rose.items() if d}
    return ct


AREA = "conntrack"
SAMPLED = True


def collect(run: Run) -> Conntrack:
    return collect_conntrack(run.roots, run.counters)
