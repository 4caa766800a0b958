"""JSON from outside (facts files, cloud-init's instance data), read without surprises.

Python's json takes `NaN` and `Infinity`, turns `1e400` into inf, raises ValueError past 4300 digits and
RecursionError on deep nesting. Here every one of those is a `ValueError` with a one-line reason, so a
damaged file is refused like any other and never reaches a check or a JSON report as NaN.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Tuple

MAX_INT_DIGITS = 40  # more than any 128-bit counter; 10**400 is not a measurement
_SCAN_CHUNK = 1 << 20


class JSONInputError(ValueError):
    """Not JSON we accept; the message is one line."""


_REFUSE = object()


def decoder(max_int_digits: int = MAX_INT_DIGITS, *, floats: bool = True, placeholder: Any = _REFUSE,
            constant: str = "a JSON number") -> json.JSONDecoder:
    """The one hardened JSON decoder: NaN and Infinity (`constant` names what they are not), a float that is
    not finite (or, without `floats`, any number that is not whole) and an integer of more than
    `max_int_digits` digits are refused with JSONInputError, or, given a `placeholder`, read as that value (a
    document whose values are all checked later loses the one odd value, not the whole document)."""
    lenient = placeholder is not _REFUSE

    def refuse(why: str) -> Any:
        if lenient:
            return placeholder
        raise JSONInputError(why)

    def parse_int(text: str) -> Any:
        digits = len(text.lstrip("-"))
        return int(text) if digits <= max_int_digits else refuse(f"a number with {digits} digits is out of range")

    def parse_float(text: str) -> Any:
        if not floats:
            return refuse(f"{text[:20]} is not a whole number")
        value = float(text)
        if math.isfinite(value):
            return value
        return refuse(f"number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")

    return json.JSONDecoder(parse_int=parse_int, parse_float=parse_float,
                            parse_constant=lambda name: refuse(f"{name} is not {constant}"))


_STRICT = decoder()


def count_outside_strings(data: bytes) -> Tuple[int, int]:
    """(objects and arrays, commas) in a JSON text, counted without parsing it, in linear time and C loops:
    parsing 64 MiB of `[]` peaks at 1.7 GiB, so a reader checks the counts before it parses. Escaped
    backslashes and quotes are dropped first (pairs, left to right, as JSON reads them); the quotes left then
    delimit strings. Exact for valid JSON; for invalid JSON an upper bound of what the parser builds before it
    stops."""
    data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    containers = commas = 0
    inside = False
    for start in range(0, len(data), _SCAN_CHUNK):  # in chunks: a split per string of 64 MiB would not fit
        parts = data[start : start + _SCAN_CHUNK].split(b'"')
        outside = b"".join(parts[1 if inside else 0 :: 2])
        containers += outside.count(b"{") + outside.count(b"[")
        commas += outside.count(b",")
        inside ^= len(parts) % 2 == 0
    return containers, commas


def loads(text: str, strict: json.JSONDecoder = _STRICT) -> Any:
    """Parse strictly (with `strict`, one of decoder()'s): JSONInputError (a ValueError, one line) for anything
    json.loads would let through oddly, for text that is not JSON, and for nesting too deep for the parser."""
    try:  # json.loads itself (bytes, a BOM), with the decoder's hooks
        return json.loads(text, parse_int=strict.parse_int, parse_float=strict.parse_float,
                          parse_constant=strict.parse_constant)
    except JSONInputError:
        raise
    except RecursionError:
        raise JSONInputError("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise JSONInputError(f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # anything else the parser raises on odd input
        raise JSONInputError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


# --- Text that is not UTF-8 (interface names, file contents), in JSON and back ---
#
# Kernel names are bytes. guestcheck decodes them as UTF-8 with surrogateescape, so a byte that is not UTF-8
# (0x80-0xff) is a lone surrogate U+DC80-U+DCFF in memory. JSON cannot carry a lone surrogate (jq makes it
# U+FFFD, strict readers refuse it), so in guestcheck's JSON such a byte is written as the four characters
# `\xff`, and a backslash that would otherwise read as the start of such an escape (one followed by `x`
# and two lowercase hex digits 80-ff, by another backslash, or by an undecodable byte) is written twice.
# Every other character, backslashes included, is written as it is: text without those sequences (every
# facts file written before) reads back unchanged.

_NEEDS_ENCODING = re.compile(r"[\\\ud800-\udfff]")
_TO_JSON = re.compile(r"\\(?=\\|x[89a-f][0-9a-f]|[\udc80-\udcff])|[\ud800-\udfff]")
_FROM_JSON = re.compile(r"\\(\\|x[89a-f][0-9a-f])")


def _to_json_escape(match: re.Match) -> str:
    ch = match.group()
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"  # no byte: cannot happen


def text_to_json(value: str) -> str:
    """`value` as guestcheck's JSON holds it: valid Unicode, undecodable bytes as `\\xHH` (see above)."""
    return _TO_JSON.sub(_to_json_escape, value) if _NEEDS_ENCODING.search(value) else value


_UNESCAPE = {"\\": "\\", **{f"x{code:02x}": chr(0xDC00 + code) for code in range(0x80, 0x100)}}


def text_from_json(value: str) -> str:
    """The inverse of text_to_json: `\\xHH` escapes back to the undecodable bytes they stand for. `value`
    holds no U+DC00 (the caller refuses lone surrogates that stand for no byte)."""
    if "\\" not in value:
        return value
    if len(value) < 256:  # a name: split at the escapes (the captured group: "\\" or "xHH"), map, join
        parts = _FROM_JSON.split(value)
        parts[1::2] = map(_UNESCAPE.__getitem__, parts[1::2])
        return "".join(parts)
    # Long text: a few scans in C rather than a call per escape (64 MiB of them took 7 s). str.replace pairs
    # backslashes left to right, as the regular expression does; U+DC00 holds each pair's place meanwhile.
    value = value.replace("\\\\", "\udc00")
    for high in "89abcdef":
        if "\\x" + high in value:
            for low in "0123456789abcdef":
                value = value.replace(f"\\x{high}{low}", chr(0xDC00 + int(high + low, 16)))
    return value.replace("\udc00", "\\")
