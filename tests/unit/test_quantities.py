"""Rates and durations: what users type, and what must be refused rather than guessed."""

from __future__ import annotations

import pytest

from guestcheck.quantities import format_rate, parse_duration, parse_rate


@pytest.mark.parametrize("text,bps", [
    ("1G", 1e9), ("100M", 1e8), ("250k", 250e3), ("250K", 250e3), ("2.5g", 2.5e9), ("10Gbit", 1e10),
    ("1 Gbit/s", 1e9), ("100Mbps", 1e8), ("9600", 9600), (" 40G ", 4e10), ("1T", 1e12),
])
def test_rates_in_bits_per_second(text, bps):
    assert parse_rate(text) == pytest.approx(bps)


@pytest.mark.parametrize("text,why", [
    ("1GB", "not bytes"), ("100MB/s", "not bytes"), ("1Q", "not a rate"), ("", "not a rate"), ("G", "not a rate"),
    ("-1G", "not a rate"), ("0", "above zero"), ("0M", "above zero"), ("1e9", "not a rate"), ("11T", "typo"),
    ("1G; rm -rf /", "not a rate"),
])
def test_malformed_rates_say_why(text, why):
    with pytest.raises(ValueError, match=why):
        parse_rate(text)


@pytest.mark.parametrize("text,seconds", [
    ("10", 10), ("10s", 10), ("10 sec", 10), ("500ms", 0.5), ("2m", 120), ("2min", 120), ("1h", 3600), ("1.5", 1.5),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten", "-5", "5x", "1d", "5 s s", "5s;ls"])
def test_malformed_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("bps,text", [
    (941_234_567, "941 Mbit/s"), (95_569_419.7, "95.6 Mbit/s"), (1e10, "10.0 Gbit/s"), (2.5e9, "2.50 Gbit/s"),
    (9_600, "9.60 kbit/s"), (12, "12.0 bit/s"), (0, "0.00 bit/s"),
])
def test_format_rate(bps, text):
    assert format_rate(bps) == text


def test_a_printed_rate_parses_back_to_itself():
    for bps in (1e9, 95.6e6, 250e3):
        printed = format_rate(bps).replace(" ", "").replace("bit/s", "")
        assert parse_rate(printed) == pytest.approx(bps, rel=0.01)
