"""The kfree_skb format file (this kernel's, Debian 12's real 6.1 and its hand-written twin, pre-5.17) and the
event lines, strictly parsed."""

from __future__ import annotations

import pytest

from guestcheck.trace.events import MAX_LINE, Event, parse_format, parse_line, protocol_name
from tests.faketracefs import DATA, format_text


def test_this_kernels_format():
    fmt = parse_format(format_text("6.18"))
    assert fmt.has_reason and fmt.location_symbolic
    assert fmt.reasons["NOT_SPECIFIED"] == 2 and fmt.reasons["NO_SOCKET"] == 3
    assert {"SOCKET_RCVBUFF", "NETFILTER_DROP", "IP_RPFILTER", "QDISC_DROP"} <= fmt.known
    assert "MAX" not in fmt.reasons and len(fmt.reasons) == 128


def test_61_format_has_its_own_numbers_and_a_hashed_location():
    fmt = parse_format(format_text("6.1"))
    assert fmt.has_reason and not fmt.location_symbolic
    assert fmt.reasons["NOT_SPECIFIED"] == 1 and fmt.reasons["QDISC_DROP"] == 45
    assert "QDISC_OVERLIMIT" not in fmt.known  # a newer kernel's reason: not in 6.1's list


def test_debian_12s_real_61_format_is_the_one_written_by_hand():
    """Captured in the Debian 12 guest (tests/vm/test_drops_vm.py, 6.1.0-50-amd64): 64 reasons, NOT_SPECIFIED = 1
    ... PKT_TOO_BIG = 64, `location=%p`; the hand-written file differed only in the event ID."""
    real = parse_format(format_text("6.1-debian12"))
    assert real.has_reason and not real.location_symbolic
    assert len(real.reasons) == 64 and "MAX" not in real.reasons
    assert (real.reasons["NOT_SPECIFIED"], real.reasons["NO_SOCKET"], real.reasons["PKT_TOO_BIG"]) == (1, 2, 64)
    by_hand = parse_format(format_text("6.1"))
    assert (real.reasons, real.location_symbolic) == (by_hand.reasons, by_hand.location_symbolic)


def test_real_lines_from_debian_12s_61():
    """6.1's lines have no rx_sk and a hashed location: the row's location is "?"."""
    lines = (DATA / "trace_pipe-6.1-debian12.txt").read_text().splitlines()
    assert [parse_line(line) for line in lines] == [("event", Event("NO_SOCKET", "ipv4", "?"))] * 3


def test_pre_517_has_no_reason():
    fmt = parse_format(format_text("5.10"))
    assert not fmt.has_reason and fmt.reasons == {}


def test_unknown_reasons_in_the_format_are_read_not_looked_up():
    text = format_text("6.18").replace('{ 130, "MAX" }', '{ 130, "BRAND_NEW_REASON" }, { 131, "MAX" }')
    text = text.replace('{ 3, "NO_SOCKET" }', '{ SKB_DROP_REASON_NO_SOCKET, "NO_SOCKET" }')  # an enum not evaluated
    fmt = parse_format(text)
    assert fmt.reasons["BRAND_NEW_REASON"] == 130 and fmt.reasons["NO_SOCKET"] is None


def test_not_a_kfree_skb_format():
    with pytest.raises(ValueError, match="not the format"):
        parse_format("name: consume_skb\n")


def test_real_lines_from_this_kernel():
    lines = (DATA / "trace_pipe-6.18.txt").read_text().splitlines()
    assert [parse_line(line) for line in lines] == [("event", Event("NO_SOCKET", "ipv4", "__udp4_lib_rcv"))] * 3


@pytest.mark.parametrize("payload, event", [
    ("skbaddr=000000008ae5c5c9 protocol=2048 location=000000003b0e14ab reason: NOT_SPECIFIED",
     Event("NOT_SPECIFIED", "ipv4", "?")),  # 6.1: a hashed pointer
    ("skbaddr=0000000057a3f9fe rx_sk=0000000000000000 protocol=34525 location=nft_do_chain+0x40/0x5a0 [nf_tables]"
     " reason: NETFILTER_DROP", Event("NETFILTER_DROP", "ipv6", "nft_do_chain [nf_tables]")),
    ("skbaddr=00000000deadbeef rx_sk=0000000000000000 protocol=2054 location=0xffffffffc0a01234 reason: 0x10002",
     Event("0x10002", "arp", "?")),  # a subsystem reason the table lacks; an address %pS could not name
    ("skbaddr=00000000deadbeef protocol=35020 location=lldp_rcv+0x1/0x2 reason: SOME_FUTURE_REASON",
     Event("SOME_FUTURE_REASON", "other 0x88cc", "lldp_rcv")),
])
def test_line_shapes(payload, event):
    assert parse_line(f"  ksoftirqd/0-15  [000] ..s1. 12.5: kfree_skb: {payload}") == ("event", event)


@pytest.mark.parametrize("line", [
    "x" * (MAX_LINE + 1),
    "python3-1 [001] kfree_skb: skbaddr=0 protocol=2048 location=f+0x1/0x2 reason: NO_SOCKET\x1b[2J",
    "python3-1 [001] kfree_skb: skbaddr=0 protocol=99999 location=f reason: NO_SOCKET",
    "python3-1 [001] kfree_skb: skbaddr=0 protocol=2048 location=f reason: NO_SOCKET extra",
    "python3-1 [001] kfree_skb: skbaddr=0 protocol=2048 location=f;rm reason: NO_SOCKET",
    "python3-1 [001] consume_skb: skbaddr=0",
    "",
])
def test_hostile_or_cut_lines_are_refused(line):
    assert parse_line(line) == ("malformed", None)


def test_a_task_name_cannot_forge_an_event():
    forged = "kfree_skb: skbaddr=0 protocol=2048 location=f reason: NETFILTER_DROP"
    line = f"{forged}-1 [000] ..s1. 1.0: kfree_skb: skbaddr=0 protocol=2048 location=g+0x1/0x2 reason: NO_SOCKET"
    assert parse_line(line) == ("event", Event("NO_SOCKET", "ipv4", "g"))


def test_lost_events_line():
    assert parse_line("CPU:1 [LOST 1234 EVENTS]") == ("lost", 1234)


def test_protocol_names():
    assert [protocol_name(p) for p in (0x800, 0x86DD, 0x806, 0x8100)] == ["ipv4", "ipv6", "arp", "other 0x8100"]
