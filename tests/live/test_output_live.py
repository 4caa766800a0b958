"""A real interface whose name holds ESC, an OSC (sets a terminal's title) and a CSI (clears the screen): the
kernel takes such a name (only '/', ':' and white space are refused). Every command that names it prints it
escaped: selftest's exit 17, doctor, watch and the tuner, run in a namespace of their own."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from guestcheck.text import escape_control
from tests.fuzz.fake_iperf3 import FakeIperf3
from tests.netns import netns, requires_netns
from tests.unit.test_output import raw_controls

pytestmark = [requires_netns, pytest.mark.root]

NAME = "n\x1b]0;o\x07\x1b[2J"  # 11 bytes
REPO = Path(__file__).resolve().parents[2]


def test_a_real_interface_name_with_terminal_controls_is_printed_escaped():
    with netns("gce") as ns, tempfile.TemporaryDirectory() as tmp:
        ns.ip("link", "add", "name", NAME, "type", "veth", "peer", "name", "gcpeer")
        ns.ip("addr", "add", "10.197.0.1/24", "dev", NAME)
        ns.ip("link", "set", NAME, "up")
        ns.ip("link", "set", "gcpeer", "up")
        assert NAME in ns.ip("-o", "link").stdout  # the kernel kept the name as it is
        fake = FakeIperf3(Path(tmp) / "bin")
        env = {**os.environ, "PYTHONPATH": str(REPO), **fake.env}
        root = str(Path(tmp) / "root")  # the tuner's /etc and /var/lib: never the host's
        runs = {
            "selftest": ["selftest", "--peer", "10.197.0.2"],  # no --expect: the route's NIC says no line rate
            "doctor": ["doctor", "--sample", "0", "-v"],
            "watch": ["watch", NAME, "--count", "1", "--interval", "0.1", "--events", "none"],
            "tune": ["tune", "--root", root, "offloads", NAME, "--dry-run"],
        }
        for what, args in runs.items():
            out = ns.run([sys.executable, "-m", "guestcheck", *args], check=False, env=env, timeout=60)
            assert "Traceback" not in out.stderr, out.stderr
            assert raw_controls(out.stdout) == [] and raw_controls(out.stderr) == [], (what, out.stdout, out.stderr)
            assert escape_control(NAME) in out.stdout + out.stderr, (what, out.stdout, out.stderr)
            if what == "selftest":
                assert out.returncode == 17 and out.stderr.startswith(
                    f"Error: interface {escape_control(NAME)} is a software NIC"), out.stderr
        assert not fake.ran("-c")  # exit 17 comes before any measurement
