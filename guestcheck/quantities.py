"""Quantities from outside: integers, seconds, rates and durations read from files, peers, options and replays.

Every number guestcheck reads from text someone else wrote goes through here, so there is one rule: ASCII digits
only. `str.isdigit()` is true for '²' (and `int('²')` raises); `int()` itself takes '٣', fullwidth digits, '1_0', '+5'
and surrounding Unicode spaces. None of those is a number a kernel, a config file or iperf3 writes, so each is
a ValueError with a one-line message here, which collectors turn into "unknown" and commands into a usage
error.

Rates are bits per second ("1G", "100M", "250k"), durations "10", "10s", "2m"; suffixes are decimal (k = 1000) as
iperf3 and NIC speeds use them; a "B" (bytes) is refused rather than guessed, because a factor of 8 wrong would
turn every verdict upside down.
"""

from __future__ import annotations

import math
import re
from typing import List, Optional

_SPACE = " \t\n\r\v\f"  # ASCII whitespace only: int() would also strip U+2003 and friends
_DECIMAL_DIGITS = frozenset("0123456789")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
MAX_DIGITS = 20  # a u64 in decimal; callers reading longer numbers (hex CPU masks) say so


def _shown(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:20] + "...")


def is_digits(text: str) -> bool:
    """Non-empty and ASCII 0-9 only (what `str.isdigit()` is mistaken for): for names like /proc/PID."""
    return bool(text) and all(c in _DECIMAL_DIGITS for c in text)


def parse_int(text: str, *, low: Optional[int] = None, high: Optional[int] = None, signed: bool = False,
              base: int = 10, max_digits: int = MAX_DIGITS) -> int:
    """An integer written in ASCII digits (hex digits, with an optional 0x, for base 16), surrounding ASCII
    whitespace allowed; a leading '-' or '+' only when `signed`. ValueError, one short line, for anything else
    or a value outside [low, high]."""
    if base not in (10, 16):
        raise ValueError(f"base {base} is not supported")
    body = text.strip(_SPACE) if isinstance(text, str) else ""
    digits = body[1:] if signed and body[:1] in ("-", "+") else body
    if base == 16 and digits[:2] in ("0x", "0X"):
        digits = digits[2:]
    allowed = _HEX_DIGITS if base == 16 else _DECIMAL_DIGITS
    if not digits or len(digits) > max_digits or not all(c in allowed for c in digits):
        kind = "a hexadecimal number" if base == 16 else "a whole number"
        raise ValueError(f"{_shown(str(text))} is not {kind}")
    value = int(digits, base)
    if body[:1] == "-":
        value = -value
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"from {low} to {high}" if low is not None and high is not None else \
            (f"at least {low}" if low is not None else f"at most {high}")
        raise ValueError(f"{_shown(body)} is not a whole number {span}")
    return value


def triple_max(value: Optional[str]) -> Optional[int]:
    """The maximum of a "min default max" sysctl such as net.ipv4.tcp_rmem, or None when it is not three fields."""
    fields = (value or "").split()
    return maybe_int(fields[2]) if len(fields) == 3 else None


def maybe_int(text: Optional[str], *, low: Optional[int] = None, high: Optional[int] = None,
              signed: bool = False, base: int = 10, max_digits: int = MAX_DIGITS) -> Optional[int]:
    """parse_int, or None when `text` is None or not such a number: for collectors, where a bad value is
    "unknown" rather than an error."""
    if text is None:
        return None
    try:
        return parse_int(text, low=low, high=high, signed=signed, base=base, max_digits=max_digits)
    except ValueError:
        return None


def int_fields(text: str) -> List[int]:
    """The whitespace-separated fields of a sysctl value ("4096 131072 6291456") as integers, sign allowed;
    ValueError when any field is not one."""
    return [parse_int(f, signed=True) for f in text.split()]


# --- seconds (--sample, watch --interval, first boot's timeout) -----------------------------------------------

DEFAULT_SAMPLE_SECONDS = 1.0  # --sample, when not given: the counters are read twice, this far apart
MAX_SAMPLE_SECONDS = 3600.0
_SECONDS_TEXT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def seconds_from_text(text: str, low: float, high: float) -> float:
    """A plain decimal number of seconds from `low` to `high`, as typed on a command line or in a config
    file. Anything else (nan, inf, 1e400, a 400-digit integer, -1, 0x10, 1_0) is a ValueError whose message
    is one short line, so the click CLI, the click-free fast path and first boot accept the same values."""
    stripped = text.strip()
    seconds = float(stripped) if _SECONDS_TEXT.fullmatch(stripped) else math.nan
    if not (math.isfinite(seconds) and low <= seconds <= high):
        shown = stripped if len(stripped) <= 24 else stripped[:20] + "..."
        raise ValueError(f"{shown!r} is not a number of seconds from {low:g} to {high:g}")
    return seconds


def sample_seconds_from_text(text: str, maximum: float = MAX_SAMPLE_SECONDS) -> float:
    """`--sample SECONDS`: 0 (no sampling) to `maximum`."""
    return seconds_from_text(text, 0, maximum)


# --- rates and durations (selftest, tune --rate/--rtt) ---------------------------------------------------------

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
