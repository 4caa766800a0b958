"""refresh.py: `guestcheck refresh` rewrites the textfile and the Ansible fact from one judged report."""

from __future__ import annotations

import json

from guestcheck.refresh import refresh
from guestcheck.tune.journal import State
from tests.fakemachine import FakeMachine


def test_refresh_writes_both_with_the_applied_profile(tmp_path):
    m = FakeMachine(tmp_path / "root")
    m.add_nic("ens3", driver="e1000", pci_id="8086:100e", speed=1000, duplex="full")
    m.write("etc/guestcheck/guestcheck.conf", "[firstboot]\ntextfile_dir = /prom\nsample = 0\n"
                                             "[fleet]\nansible_facts = yes\n")
    m.write("var/lib/guestcheck/tune-state.json", State(profile="throughput").to_text())
    m.write_ethtool()
    (m.base / "prom").mkdir()
    said: list[str] = []
    assert refresh(m.roots, said.append) == 0
    prom = (m.base / "prom/guestcheck.prom").read_text()
    fact = json.loads((m.base / "etc/ansible/facts.d/guestcheck.fact").read_text())
    assert fact["nic_kinds"] == {"ens3": "emulated"} and fact["profile"] == "throughput"
    assert 'guestcheck_info{version="' in prom and 'profile="throughput"} 1' in prom
    assert said[-1].startswith("guestcheck refresh: status critical; wrote ")


def test_refresh_with_nothing_asked_writes_nothing(tmp_path):
    m = FakeMachine(tmp_path / "root")
    m.write_ethtool()
    said: list[str] = []
    assert refresh(m.roots, said.append) == 0
    assert said[-1].endswith("wrote nothing (none asked)")


def test_a_missing_textfile_dir_is_not_made_and_is_an_error(tmp_path):
    # as doctor --textfile-dir: a typo must not grow a tree node_exporter never reads
    m = FakeMachine(tmp_path / "root")
    m.write("etc/guestcheck/guestcheck.conf", "[firstboot]\ntextfile_dir = /prom\nsample = 0\n")
    m.write_ethtool()
    said: list[str] = []
    assert refresh(m.roots, said.append) == 1
    assert not (m.base / "prom").exists()
    assert f"guestcheck refresh: cannot write metrics into {m.base}/prom: no such directory" in said[0]


def test_a_failed_write_never_says_none_asked(tmp_path):
    m = FakeMachine(tmp_path / "root")
    m.write("etc/guestcheck/guestcheck.conf", "[firstboot]\ntextfile_dir = /prom\nsample = 0\n")
    m.write_ethtool()
    (m.base / "prom/guestcheck.prom").mkdir(parents=True)  # a directory where the file goes: the write fails
    said: list[str] = []
    assert refresh(m.roots, said.append) == 1
    assert said[0] == f"guestcheck refresh: cannot write metrics into {m.base}/prom: Is a directory"
    assert said[-1].endswith("; wrote nothing (see above)") and "none asked" not in said[-1]
