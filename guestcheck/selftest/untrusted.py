"""Values from outside (iperf3's JSON, which carries the peer's numbers and text; a saved document to
compare with) read with their type and range checked, so a hostile peer or file gives "no value", never
an exception.

Python's json module accepts NaN and Infinity, raises a plain ValueError on an integer of more than 4300
digits (3.11+) and RecursionError on deep nesting; `load_object` turns all of those into None or absent
values. The getters below never raise: a wrong type or a value out of range is None.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional

from guestcheck.strictjson import decoder
from guestcheck.text import escape_control

MAX_INT_DIGITS = 30  # far beyond any counter iperf3 keeps; longer integers are read as "no value"
MAX_TEXT = 300  # characters of outside text shown in a message


class _NotANumber:
    """Stands for NaN, Infinity and over-long integers: no getter accepts it, json.dumps never sees it."""


NOT_A_NUMBER = _NotANumber()


# Lenient where strictjson.loads refuses: iperf3's document carries the peer's numbers, and one odd number
# must cost that value only, not the whole measurement; and parse/load_object keep their own words and read
# from an offset (raw_decode), so they use the decoder and not strictjson.loads.
_DECODER = decoder(MAX_INT_DIGITS, placeholder=NOT_A_NUMBER)


class Damaged(ValueError):
    """The text is not JSON we can read: a one-line reason."""


def parse(text: str) -> Any:
    """The whole of `text` as one JSON value; Damaged when it is not JSON, or nested too deep."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise Damaged(f"not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (ValueError, RecursionError) as e:
        raise Damaged(f"not JSON we can read ({type(e).__name__})") from None


def load_object(text: str, start: int = 0) -> Optional[dict[str, Any]]:
    """The JSON object at `start` of `text`, or None when there is none, it is damaged, or too deep."""
    try:
        obj, _ = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return None
    return obj if isinstance(obj, dict) else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def number(value: Any, low: float, high: float) -> Optional[float]:
    """A finite number within [low, high] (bools are not numbers), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not low <= value <= high:  # int against float compares exactly, without overflow
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def whole(value: Any, low: int, high: int) -> Optional[int]:
    """An integer within [low, high]; floats are refused, as a count is never fractional."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def printable(text: str, limit: int = MAX_TEXT) -> str:
    """One line, safe for a terminal: control characters escaped, whitespace runs squeezed, cut at `limit`."""
    squeezed = " ".join(text[: limit * 4].split())
    return escape_control(squeezed[:limit]) + ("..." if len(squeezed) > limit or len(text) > limit * 4 else "")


def text(value: Any, limit: int = MAX_TEXT) -> Optional[str]:
    """A string, made printable; None for anything else."""
    return printable(value, limit) if isinstance(value, str) else None
