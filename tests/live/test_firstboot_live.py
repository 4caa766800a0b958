"""First boot's time limit on a real kernel: it cuts off a real profile apply inside a network namespace we made,
and the tuner's journal rolls the namespace's sysctls back. Files go to a temporary root (as `tune --root`)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.live.test_tune_live import MANY_KEYS, host_value, sysctls
from tests.netns import netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns]
REPO = Path(__file__).resolve().parents[2]

# firstboot.run with /etc, /run and /var/lib under ROOT and /proc, /sys the namespace's own (tune --root's roots)
RUN_FIRSTBOOT = """
import sys
from guestcheck import firstboot
from guestcheck.tune.cli import config_roots
firstboot.run(config_roots(sys.argv[1]), emit=print)
"""


def test_the_time_limit_cuts_off_a_real_apply_and_rolls_it_back(tmp_path):
    keys = MANY_KEYS[:4]
    host_before = {k: host_value(k) for k, _ in keys}
    profiles = tmp_path / "etc/guestcheck/profiles"
    profiles.mkdir(parents=True)
    body = "".join(f"# reason: live test {i}\n{k} = {v}\n" for i, (k, v) in enumerate(keys))
    (profiles / "livecut.conf").write_text(f"[main]\nsummary = cut off by the time limit\n[sysctl]\n{body}")
    (tmp_path / "etc/guestcheck/guestcheck.conf").write_text("[firstboot]\nprofile = livecut\ntimeout = 8\n")
    (tmp_path / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_TEST_PAUSE_AFTER_WRITE": "2"}
    env.pop("GUESTCHECK_PROFILES", None)
    env.pop("GUESTCHECK_ROOT", None)
    with netns() as ns:
        before = sysctls(ns)
        assert all(before[k] != v for k, v in keys)  # every key really changes
        start = time.monotonic()
        out = ns.run([sys.executable, "-c", RUN_FIRSTBOOT, str(tmp_path)], check=False, timeout=60, env=env)
        took = time.monotonic() - start
        print(out.stdout, out.stderr)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.count("guestcheck-test: wrote ") == 2  # the tuner changed two keys, then stalled
        assert took < 40  # the 8 s limit, not the tuner's 60 s stall (a loaded machine starts Python slowly)
        assert sysctls(ns) == before  # both writes undone on the namespace's real kernel
    assert {k: host_value(k) for k, _ in keys} == host_before
    assert ("guestcheck firstboot: problem: profile livecut not applied: cut off by the 8 s time limit; "
            "rolled back from its journal (2 change(s) undone)") in out.stdout
    report = json.loads((tmp_path / "var/lib/guestcheck/report.json").read_text())
    assert report["firstboot"]["profile_rolled_back"] is True and report["status"] == "unknown"
    assert json.loads((tmp_path / "var/lib/guestcheck/firstboot.json").read_text())["instance_source"] == "machine-id"
    assert not (tmp_path / "var/lib/guestcheck/tune-state.json").exists()
    assert not (tmp_path / "etc/sysctl.d/90-guestcheck.conf").exists()
