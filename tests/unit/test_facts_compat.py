"""Facts files written by the previous release (main at 1096a5b), judged by this one.

The files in tests/unit/data were written by that release's own code on fake trees built with FakeMachine:
  facts-1096a5b-ec2-metal.json  `GUESTCHECK_ROOT=TREE python3 -m guestcheck facts --json --sample 0`, a tree with
                                DMI "Amazon EC2", product m5.metal and no CPUID hypervisor bit (bare metal);
  facts-1096a5b-bhyve.json      collect_facts(cpuid_reader=lambda: "bhyve bhyve ") on a bhyve guest whose DMI
                                the host renamed (SmartOS: "Joyent", "SmartDC HVM"), as that release's CLI cannot
                                fake CPUID.
That release froze a verdict into each ("kvm" and "unknown"); `doctor --facts` must judge again, by today's tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_cli import guestcheck

DATA = Path(__file__).resolve().parent / "data"

CASES = [
    # file, what 1096a5b wrote (hypervisor, cloud), what today's tables say
    ("facts-1096a5b-ec2-metal.json", ("kvm", "amazon"), (None, "amazon")),
    ("facts-1096a5b-bhyve.json", ("unknown", None), ("bhyve", None)),
]


def _keys(value, prefix=""):
    """Every key path in a JSON document (list items merged), to show no field was lost."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(prefix + k)
            out |= _keys(v, prefix + k + ".")
    elif isinstance(value, list):
        for v in value:
            out |= _keys(v, prefix + "[].")
    return out


@pytest.mark.parametrize("name,frozen,today", CASES, ids=[c[0] for c in CASES])
def test_old_facts_file_is_judged_by_todays_tables(name, frozen, today):
    path = DATA / name
    saved = json.loads(path.read_text())
    assert saved["guestcheck_version"] == "0.1.0"
    assert (saved["virt"]["hypervisor"], saved["virt"]["cloud"]) == frozen  # the frozen, wrong answer
    out = guestcheck("doctor", "--facts", str(path), "--json")
    assert out.returncode in (0, 1, 2, 3) and "Traceback" not in out.stderr, out.stderr
    report = json.loads(out.stdout)
    virt = report["facts"]["virt"]
    assert (virt["hypervisor"], virt["cloud"]) == today
    platform = next(f for f in report["findings"] if f["id"] == "VIRT-PLATFORM")
    assert (platform["evidence"]["hypervisor"], platform["evidence"]["cloud"]) == today
    # the contracts lose no field: everything the old file had is still in the new document
    assert _keys(saved) <= _keys(report["facts"])


def test_old_facts_file_in_the_human_report():
    out = guestcheck("doctor", "--facts", str(DATA / "facts-1096a5b-ec2-metal.json"))
    assert "machine: bare metal (amazon)" in out.stdout
