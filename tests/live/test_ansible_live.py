"""contrib/ansible/guestcheck.yml run by Debian's ansible-core against localhost (-c local), and the
`.fact` file read back through `ansible localhost -m setup -a filter=ansible_local`.

Doctor reads this machine (read-only); `tune` runs with GUESTCHECK_ROOT on a fake kernel (tests/tune_fake.py),
so the apply writes only below the temporary root. The real sysctls are compared before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guestcheck.refresh import refresh
from tests.fakemachine import FakeMachine
from tests.tune_fake import FakeKernel

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None,
                                reason="needs ansible-core (apt-get install ansible-core)")

REPO = Path(__file__).resolve().parent.parent.parent
PLAYBOOK = REPO / "contrib/ansible/guestcheck.yml"
REAL_KEYS = ("net/ipv4/tcp_mtu_probing", "net/ipv4/tcp_notsent_lowat", "net/ipv4/tcp_slow_start_after_idle")


def _ansible_env(tmp_path: Path) -> dict:
    # HOME and both temp directories under the test's own directory: nothing lands in the real ~/.ansible
    return {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            "HOME": str(tmp_path / "home"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote-tmp"), "ANSIBLE_NOCOLOR": "1"}


def _real_sysctls() -> dict:
    return {k: Path("/proc/sys", k).read_text() for k in REAL_KEYS}


def test_the_playbook_collects_reports_and_shows_the_diff_before_the_apply(tmp_path):
    kernel = FakeKernel(tmp_path / "root")
    real_before = _real_sysctls()
    extra = {"guestcheck_command": [sys.executable, "-m", "guestcheck"],
             "guestcheck_reports_dir": str(tmp_path / "reports"),
             "guestcheck_profile": "latency", "guestcheck_apply": True,
             "guestcheck_tune_options": ["--profiles", str(REPO / "profiles")],
             "guestcheck_environment": {"PYTHONPATH": str(REPO)},
             "guestcheck_tune_environment": {"GUESTCHECK_ROOT": str(tmp_path / "root")}}
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(PLAYBOOK),
                           "-e", json.dumps(extra)], capture_output=True, text=True, timeout=300,
                          env=_ansible_env(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "reports/localhost.json").read_text())
    assert report["schema"] == "guestcheck.doctor/1" and report["status"] in ("ok", "warning", "critical")
    out = done.stdout
    diff_at, apply_at = out.index("TASK [The diff]"), out.index("TASK [Apply the profile")
    assert diff_at < apply_at and "net.ipv4.tcp_notsent_lowat: 4294967295 -> 131072" in out[diff_at:apply_at]
    assert "applied latency" in out[apply_at:]
    assert kernel.get("net.ipv4.tcp_notsent_lowat") == "131072" and kernel.state.is_file()  # the fake kernel
    assert _real_sysctls() == real_before  # and nothing on the real one


def test_report_only_without_a_profile_changes_nothing(tmp_path):
    real_before = _real_sysctls()
    extra = {"guestcheck_command": [sys.executable, "-m", "guestcheck"],
             "guestcheck_reports_dir": str(tmp_path / "reports"),
             "guestcheck_environment": {"PYTHONPATH": str(REPO)}}
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(PLAYBOOK),
                           "-e", json.dumps(extra)], capture_output=True, text=True, timeout=300,
                          env=_ansible_env(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:]
    assert "skipping: [localhost]" in done.stdout and "applied" not in done.stdout
    assert (tmp_path / "reports/localhost.json").is_file()
    assert _real_sysctls() == real_before  # checked, not only read off the playbook's output


def test_the_fact_file_reads_back_through_ansible_setup(tmp_path):
    machine = FakeMachine(tmp_path / "root")
    machine.add_nic("ens3", driver="e1000", pci_id="8086:100e", speed=1000, duplex="full")
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nsample = 0\n")
    machine.write_ethtool()
    (machine.base / "etc/ansible/facts.d").mkdir(parents=True)
    assert refresh(machine.roots, lambda line: None) == 0
    fact_path = machine.base / "etc/ansible/facts.d"
    done = subprocess.run(["ansible", "localhost", "-c", "local", "-m", "ansible.builtin.setup", "-a",
                           f"filter=ansible_local fact_path={fact_path}"], capture_output=True, text=True,
                          timeout=300, env=_ansible_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout.split("=>", 1)[1])
    fact = answer["ansible_facts"]["ansible_local"]["guestcheck"]
    assert fact["schema"] == "guestcheck.ansible/1" and fact["status"] == "critical"
    assert fact["nic_kinds"] == {"ens3": "emulated"}
    assert {"id": "NIC-EMULATED", "severity": "critical", "subject": "ens3"} in fact["findings"]
