"""guestcheck/quantities.py: numbers from outside. Rates and durations users type, whole numbers files and peers
write; what must be refused rather than guessed."""

from __future__ import annotations

import pytest

from guestcheck.quantities import format_rate, int_fields, is_digits, maybe_int, parse_duration, parse_int, parse_rate


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


# --- integers from outside: ASCII digits only ------------------------------------------------------------------

NOT_ASCII_DIGITS = ["²", "٣", "\uff11", "1²", "²1", "12٣", "1_0", "+5", "1 2", "0x10", "", " ", "-", "1.0", "1e3",
                    "\u20031\u2003", "\uff11\uff15\uff10\uff10", "9" * 21]


@pytest.mark.parametrize("text", NOT_ASCII_DIGITS)
def test_only_ascii_digits_are_a_whole_number(text):
    """str.isdigit() says yes to '²' and int() to '٣' and '1_0': neither is a number a file or a peer writes."""
    with pytest.raises(ValueError) as caught:
        parse_int(text)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 80
    assert maybe_int(text) is None


@pytest.mark.parametrize("text,value", [("0", 0), ("1500", 1500), (" 1500\n", 1500), ("\t7 ", 7),
                                        ("18446744073709551615", 2**64 - 1), ("007", 7)])
def test_ascii_digits_with_surrounding_ascii_space(text, value):
    assert parse_int(text) == value == maybe_int(text)


def test_a_sign_only_where_asked():
    assert parse_int("-1", signed=True) == -1 and parse_int("+3", signed=True) == 3
    for text in ("-1", "+3", "--1", "-"):
        assert maybe_int(text) is None
    assert maybe_int("--1", signed=True) is None and maybe_int("-²", signed=True) is None


def test_range_and_length_are_checked():
    assert parse_int("65535", low=1, high=65535) == 65535
    with pytest.raises(ValueError, match="from 1 to 65535"):
        parse_int("65536", low=1, high=65535)
    with pytest.raises(ValueError, match="at least 1"):
        parse_int("0", low=1)
    assert maybe_int("123456", max_digits=5) is None
    assert maybe_int(None) is None


def test_hexadecimal_is_ascii_too():
    assert parse_int("0x1003", base=16) == 0x1003 == parse_int("1003\n", base=16)
    assert parse_int("ffffffff", base=16) == 2**32 - 1
    for text in ("٣", "0x", "g", "1_0", "\uff11"):
        assert maybe_int(text, base=16) is None


def test_names_made_of_digits():
    assert is_digits("1234") and not is_digits("²") and not is_digits("") and not is_digits("12٣")


def test_sysctl_fields():
    assert int_fields("4096\t131072 6291456\n") == [4096, 131072, 6291456]
    assert int_fields("-1 0") == [-1, 0]
    with pytest.raises(ValueError):
        int_fields("4096 ² 1")


def test_triple_max_reads_the_third_of_three_fields_or_nothing():
    from guestcheck.quantities import triple_max

    assert triple_max("4096 131072 6291456") == 6291456
    assert triple_max("4096\t131072  33554432\n") == 33554432
    for bad in (None, "", "4096 131072", "1 2 3 4", "4096 131072 lots", "4096 131072 \u00b2"):
        assert triple_max(bad) is None, bad
