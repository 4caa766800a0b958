"""--rate with --rtt or --peer (guestcheck/tune/netpath.py): parsing, the RTT probe, the memory cap."""

from __future__ import annotations

import socket
from fractions import Fraction
from types import SimpleNamespace

import pytest

from guestcheck.selftest.probe import ConnectRtt
from guestcheck.tune import TuneError
from guestcheck.tune.netpath import memory_cap, parse_path
from guestcheck.tune.profile import Guards


def test_no_path_options_no_path():
    assert parse_path(None, None, None) is None


def test_rate_and_rtt():
    p = parse_path("400M", "300ms", None)
    assert (p.rate_bps, p.rtt_s, p.rtt_source) == (400e6, 0.3, "--rtt 300ms")


@pytest.mark.parametrize("rate,rtt,peer,words", [
    (None, "300ms", None, "need --rate"),
    ("400M", None, None, "either --rtt TIME or --peer HOST"),
    ("400M", "1ms", "127.0.0.1", "either --rtt TIME or --peer HOST"),
    ("400MB", "300ms", None, "--rate: '400MB' is not a rate"),
    ("nan", "300ms", None, "is not a rate"),
    ("1" + "0" * 400, "300ms", None, "above 10 Tbit/s"),
    ("400M", "forever", None, "--rtt: 'forever' is not a duration"),
    ("400M", "0", None, "out of range"),
    ("400M", "1" + "0" * 400, None, "out of range"),
    ("400M", "2h", None, "out of range"),
    ("400M", None, "-oProxyCommand=x", "--peer: bad peer"),
    ("400M", None, "host;rm -rf /", "--peer: bad peer"),
])
def test_bad_path_options_are_one_line(rate, rtt, peer, words):
    with pytest.raises(TuneError) as e:
        parse_path(rate, rtt, peer)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_peer_rtt_is_the_least_of_the_connects_to_a_loopback_listener():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        p = parse_path("1G", None, f"127.0.0.1:{port}")
    assert 0 < p.rtt_s < 0.5
    assert p.rtt_source.startswith(f"measured: least of 5 TCP connects to 127.0.0.1:{port}")


def test_a_silent_peer_asks_for_rtt():
    with pytest.raises(TuneError, match=r"did not answer a TCP connect .* give the round trip with --rtt"):
        parse_path("1G", None, "127.0.0.1", probe=lambda *a, **k: None)


def test_peer_probe_is_asked_for_the_port_given():
    asked = []

    def probe(address, port, **kw):
        asked.append((address, port))
        return ConnectRtt([3.0, 2.0, 4.0], ["rst"] * 3)

    p = parse_path("1G", None, "[::1]:7000", probe=probe)
    assert asked == [("::1", 7000)] and p.rtt_s == 0.002


def test_memory_cap_from_the_verdict_and_the_profile_share():
    facts = SimpleNamespace(memory=SimpleNamespace(total_bytes=2**30))
    verdict = SimpleNamespace(guaranteed=True, total_bytes=2**30, reasons=[])
    cap = memory_cap(facts, Guards(), lambda f: verdict)
    assert (cap.cap_bytes, cap.share) == (2**26, Fraction(1, 16))
    assert memory_cap(facts, Guards(max_buffer_share=Fraction(1, 32)), lambda f: verdict).cap_bytes == 2**25
    unknown = SimpleNamespace(guaranteed=None, total_bytes=None, reasons=[])
    with pytest.raises(TuneError, match="RAM unknown"):
        memory_cap(SimpleNamespace(memory=None), Guards(), lambda f: unknown)
