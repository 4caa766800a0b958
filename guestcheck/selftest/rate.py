"""Rates in bits per second ("1G", "100M", "250k") and durations ("10", "10s", "2m"), parsed and printed.

Suffixes are decimal (k = 1000) as iperf3 and NIC speeds use them; a "B" (bytes) is refused rather than
guessed, because a factor of 8 wrong would turn every verdict upside down.
"""

from __future__ import annotations

import re

_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:bit/s|bits/s|bit|bps|b/s)?$", re.IGNORECASE | re.ASCII)
_MULTIPLIER = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
MAX_RATE = 10 * 10**12  # 10 Tbit/s: anything above is a typo

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min|h)?$", re.IGNORECASE | re.ASCII)
_SECONDS = {"ms": 0.001, "": 1, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "h": 3600}


def parse_rate(text: str) -> float:
    """Bits per second; ValueError with a one-line reason for anything else."""
    match = _RATE.match(text.strip())
    if not match or "B" in text:  # a capital B is bytes: MB/s, GB
        hint = " (rates are bits per second, not bytes)" if "B" in text else ""
        raise ValueError(f"{text!r} is not a rate: use bits per second like 1G, 100M, 250k{hint}")
    bps = float(match.group(1)) * _MULTIPLIER[match.group(2).lower()]
    if bps <= 0:
        raise ValueError(f"{text!r}: the rate must be above zero")
    if bps > MAX_RATE:
        raise ValueError(f"{text!r}: above 10 Tbit/s, surely a typo")
    return bps


def parse_duration(text: str) -> float:
    """Seconds from "10", "10s", "500ms", "2m" or "1h"; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration: use seconds like 10, 10s, 500ms or 2m")
    return float(match.group(1)) * _SECONDS[(match.group(2) or "").lower()]


def format_rate(bps: float) -> str:
    """Three significant digits in the largest unit that keeps the number at or above 1."""
    for unit, size in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= size:
            return f"{_three_digits(bps / size)} {unit}"
    return f"{_three_digits(bps)} bit/s"


def _three_digits(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
