"""JSON from outside (facts files, cloud-init's instance data), read without surprises.

Python's json takes `NaN` and `Infinity`, turns `1e400` into inf, raises ValueError past 4300 digits and
RecursionError on deep nesting. Here every one of those is a `ValueError` with a one-line reason, so a
damaged file is refused like any other and never reaches a check or a JSON report as NaN.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_INT_DIGITS = 40  # more than any 128-bit counter; 10**400 is not a measurement


class JSONInputError(ValueError):
    """Not JSON we accept; the message is one line."""


def _constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONInputError(f"number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise JSONInputError(f"a number with {digits} digits is out of range")
    return int(text)


def loads(text: str) -> Any:
    """Parse strictly: JSONInputError (a ValueError) for anything json.loads would let through oddly."""
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except JSONInputError:
        raise
    except RecursionError:
        raise JSONInputError("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise JSONInputError(f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # anything else the parser raises on odd input
        raise JSONInputError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
