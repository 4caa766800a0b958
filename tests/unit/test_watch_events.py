"""watch/events.py: rtnetlink link messages decoded and turned into add/remove/rename/carrier events."""

from __future__ import annotations

import struct

from guestcheck.roots import Roots
from guestcheck.watch.events import (
    IFF_LOWER_UP,
    RTM_DELLINK,
    RTM_NEWLINK,
    LinkTracker,
    choose_source,
    parse_link_messages,
)


def _message(msg_type: int, index: int, name: bytes, flags: int = 0) -> bytes:
    attr = struct.pack("=HH", 4 + len(name) + 1, 3) + name + b"\0"
    attr += b"\0" * (-len(attr) % 4)
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0) + attr
    return struct.pack("=IHHII", 16 + len(body), msg_type, 0, 0, 0) + body


def test_messages_are_decoded_in_order():
    data = _message(RTM_NEWLINK, 5, b"veth0", IFF_LOWER_UP) + _message(RTM_DELLINK, 6, b"eth1")
    assert parse_link_messages(data) == [(RTM_NEWLINK, 5, IFF_LOWER_UP, "veth0"), (RTM_DELLINK, 6, 0, "eth1")]


def test_truncated_and_foreign_messages_are_skipped():
    whole = _message(RTM_NEWLINK, 5, b"veth0")
    assert parse_link_messages(whole[:-3]) == []
    other = struct.pack("=IHHII", 16, 3, 0, 0, 0)  # NLMSG_DONE
    assert parse_link_messages(other + whole) == [(RTM_NEWLINK, 5, 0, "veth0")]
    bad_attr = whole[:32] + struct.pack("=HH", 200, 3) + whole[36:]
    assert parse_link_messages(bad_attr) == [(RTM_NEWLINK, 5, 0, "")]


def test_a_name_with_control_characters_is_kept_for_the_view_to_escape():
    assert parse_link_messages(_message(RTM_NEWLINK, 9, b"a\x1b[2Jb"))[0][3] == "a\x1b[2Jb"


def test_tracker_turns_messages_into_events():
    tracker = LinkTracker({2: ("eth0", IFF_LOWER_UP)})
    assert [e.kind for e in tracker.feed(RTM_NEWLINK, 2, IFF_LOWER_UP, "eth0", 1.0)] == []  # nothing changed
    assert [(e.kind, e.name) for e in tracker.feed(RTM_NEWLINK, 7, 0, "enP1s1", 1.0)] == [("added", "enP1s1")]
    assert [(e.kind, e.name) for e in tracker.feed(RTM_NEWLINK, 2, 0, "eth0", 1.0)] == [("link down", "eth0")]
    renamed = tracker.feed(RTM_NEWLINK, 7, 0, "eth1", 1.0)
    assert [(e.kind, e.name, e.old_name) for e in renamed] == [("renamed", "eth1", "enP1s1")]
    assert [(e.kind, e.name) for e in tracker.feed(RTM_DELLINK, 7, 0, "", 1.0)] == [("removed", "eth1")]


def test_auto_picks_udev_only_where_udevd_runs(tmp_path):
    roots = Roots.under(str(tmp_path))
    assert choose_source("auto", roots) == "rtnetlink"
    (tmp_path / "run/udev").mkdir(parents=True)
    (tmp_path / "run/udev/control").write_text("")
    (tmp_path / "proc").mkdir()  # no ns links under the fake /proc: "same namespace" is assumed
    assert choose_source("auto", roots) == "udev"
    assert choose_source("none", roots) == "none"


def test_one_read_takes_a_bounded_number_of_messages():
    """Under a flood of link changes read() returns after MAX_READS messages, so the loop still ticks."""
    from guestcheck.watch.events import MAX_READS, RtnetlinkEvents

    class Flood:
        calls = 0

        def recv(self, size: int) -> bytes:
            Flood.calls += 1
            return _message(RTM_NEWLINK, 7, b"eth1", IFF_LOWER_UP * (Flood.calls % 2))

    source = RtnetlinkEvents.__new__(RtnetlinkEvents)
    source._sock, source._tracker = Flood(), LinkTracker({})
    events = source.read()
    assert Flood.calls == MAX_READS and len(events) == MAX_READS  # added, then link up/down in turn
