"""watch/view.py: the terminal screen and the piped line, highlights, and escaped names."""

from __future__ import annotations

from guestcheck.facts import CpuSteal, SoftnetCpu
from guestcheck.findings import Finding, Severity
from guestcheck.watch.events import LinkEvent
from guestcheck.watch.frame import Frame, LinkRates, Rates
from guestcheck.watch.view import CLEAR, event_line, line, screen


def _frame(flags=(), drops=0.0, name="eth0") -> Frame:
    link = LinkRates(name, Rates(941e6, 1e6, 81_300, 20_000, drops), {("rx", 0): Rates(500e6, 0, 40_000, 0, 0)})
    softnet = [SoftnetCpu(cpu=0, processed_per_s=1, dropped_per_s=3, squeezed_per_s=0, net_rx_per_s=1200)]
    return Frame(1.0, [link], softnet, CpuSteal(seconds=1, percent=12.5, per_cpu={"cpu0": 12.5}), list(flags))


FLAGS = [Finding("CPU-STEAL", Severity.WARNING, "cpu", "steal 12.5%", {}, ""),
         Finding("SOFTIRQ-DROPS", Severity.WARNING, "cpu0", "backlog full", {}, "")]


def test_piped_line_is_one_line_and_marks_flagged_values():
    text = line(_frame(FLAGS, drops=2), 0)
    assert "\n" not in text and "\033" not in text
    assert "eth0 rx 941 Mbit/s 81.3k pkt/s tx 1.00 Mbit/s 20k pkt/s drops 2/s!" in text
    assert "drop 3!/s" in text and text.endswith("steal 12.5%!")


def test_nothing_flagged_means_no_marks():
    text = line(_frame(), 0)
    assert "!" not in text and "drops 0/s" in text


def test_screen_has_queues_flags_and_colour_only_when_asked():
    plain = screen(_frame(FLAGS), 0, [], colour=False, interval=1)
    assert plain.startswith(CLEAR)
    assert "\n  rx-0               500 Mbit/s       40k              -         -  0\n" in plain
    assert "doctor would flag CPU-STEAL [cpu]: steal 12.5%!" in plain
    coloured = screen(_frame(FLAGS), 0, [], colour=True, interval=1)
    assert "\033[1;31msteal 12.5%\033[0m" in coloured


def test_names_from_the_kernel_are_escaped():
    evil = "e\x1b[2Jx"
    assert "\x1b[2J" not in line(_frame(name=evil), 0).replace(CLEAR, "")
    assert "e\\x1b[2Jx" in screen(_frame(name=evil), 0, [], colour=False, interval=1)
    assert event_line(LinkEvent(0, "added", evil)).endswith("event: e\\x1b[2Jx added")
    renamed = event_line(LinkEvent(0, "renamed", "eth1", "enP1\n"))
    assert renamed.endswith("enP1\\n renamed to eth1")


def test_screen_lists_the_latest_events():
    events = [LinkEvent(float(i), "added", f"v{i}") for i in range(20)]
    text = screen(_frame(), 0, events, colour=False, interval=1)
    assert "v19 added" in text and "v11 added" not in text
