"""`guestcheck watch` on a real terminal (tmux) in network namespaces with real iperf3 traffic.

The rate watch shows for a veth is compared with iperf3's own figure for the same traffic; link events come
from rtnetlink, the only source inside a namespace (udevd listens in the first one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import time

import pytest

from tests.live.test_selftest_live import iperf3_server, shaped_path
from tests.netns import Netns, guestcheck_in, requires_netns
from tests.tmux import pane, requires_tmux

pytestmark = [requires_netns, requires_tmux,
              pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_UNITS = {"bit/s": 1, "kbit/s": 1e3, "Mbit/s": 1e6, "Gbit/s": 1e9, "Tbit/s": 1e12}


def watch_argv(ns: Netns, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns.name, "env", f"PYTHONPATH={REPO}", sys.executable, "-m", "guestcheck",
            "watch", *args]


def shown_tx_bps(screen: str, iface: str) -> float | None:
    """The tx column of `iface`'s row on watch's screen."""
    match = re.search(rf"^{iface}\s+([\d.]+) (\S+)\s+\S+\s+([\d.]+) (\S+)", screen, re.MULTILINE)
    return float(match.group(3)) * _UNITS[match.group(4)] if match else None


def test_the_shown_rate_is_within_ten_percent_of_iperf3s():
    with shaped_path("100mbit") as (a, b), iperf3_server(b), pane(watch_argv(a, "gc0")) as p:
        p.wait_for(lambda s: "gc0" in s and "steal" in s, 20, "the first frame")
        client = a.popen(["iperf3", "-c", "10.199.0.2", "-t", "8", "-J"], stdout=-1, stderr=-1, text=True)
        shown = []
        time.sleep(2.5)  # past slow start, so every frame we read is inside the steady part
        for _ in range(4):
            before = p.text()
            p.wait_for(lambda s, old=before: s != old, 5, "a new frame")
            time.sleep(0.2)
            rate = shown_tx_bps(p.text(), "gc0")
            assert rate is not None, p.text()
            shown.append(rate)
        out, _ = client.communicate(timeout=30)
        iperf3_bps = json.loads(out)["end"]["sum_sent"]["bits_per_second"]
        median = statistics.median(shown)
        # the interface counts Ethernet and IP headers too (1514 bytes on the wire per 1448 of payload, ~4.5 %)
        assert abs(median - iperf3_bps) / iperf3_bps <= 0.10, (shown, iperf3_bps)
        assert median > 50e6, shown  # real traffic under a 100 Mbit/s shaper, not an idle link


def test_adding_and_deleting_a_veth_shows_events_and_ctrl_c_exits_cleanly():
    with shaped_path("100mbit") as (a, _b), pane(watch_argv(a)) as p:
        p.wait_for(lambda s: "gc0" in s and "steal" in s, 20, "the first frame")
        a.ip("link", "add", "gcev0", "type", "veth", "peer", "name", "gcev1")
        p.wait_for(lambda s: "gcev0 added" in s and "gcev1 added" in s, 5, "the add events")
        a.ip("link", "del", "gcev0")
        p.wait_for(lambda s: "gcev0 removed" in s and "gcev1 removed" in s, 5, "the remove events")
        a.ip("link", "set", "gc0", "down")
        p.wait_for(lambda s: "gc0 link down" in s, 5, "the carrier event")
        p.keys("C-c")
        assert p.wait_exit(10) == 0
        screen = p.text()
        assert "Traceback" not in screen and "interrupted" not in screen, screen


def test_piped_prints_count_lines_and_exits():
    with shaped_path("100mbit") as (a, _b):
        done = guestcheck_in(a, "watch", "--count", "3", "--interval", "0.3", "gc0", timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    assert all(re.match(r"\d\d:\d\d:\d\d gc0 rx .* tx .* drops .* \| steal ", line) for line in lines), lines
    assert "\033" not in done.stdout


def test_a_named_interface_that_does_not_exist_is_a_one_line_error():
    with shaped_path("100mbit") as (a, _b):
        done = guestcheck_in(a, "watch", "nope0", timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == "Error: no network interface named 'nope0'"
