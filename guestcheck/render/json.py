"""The machine-readable report (schema documented in README.md)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from guestcheck.facts import Facts
from guestcheck.judge import Judged, with_verdicts
from guestcheck.text import UNSAFE


def facts_document(facts: Facts, judged: Judged) -> dict[str, Any]:
    """facts/1 (alone, or inside doctor/1): the facts with the judge's verdicts merged in where that schema has
    always shown them (the platform, each NIC's kind, kind_reason and software_type)."""
    return with_verdicts(facts, judged).to_dict()


def finite(value: Any) -> Any:
    """NaN and infinities (a ratio of zeros, an overflowing sum) as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(document: dict[str, Any], *, pretty: bool = True) -> str:
    """Always valid JSON; indented for people, compact for pipes (json's C encoder makes it ~8x faster)."""
    options: dict[str, Any] = {"indent": 2} if pretty else {"separators": (",", ":")}
    try:
        text = json.dumps(document, ensure_ascii=False, allow_nan=False, **options)
    except ValueError:  # a NaN somewhere: the rare case pays for the walk
        document = finite(document)
        text = json.dumps(document, ensure_ascii=False, allow_nan=False, **options)
    if UNSAFE.search(text):  # json leaves DEL, C1 controls, bidi marks and lone surrogates raw
        text = UNSAFE.sub(_json_escape, text)
    return text + "\n"


def _json_escape(match: re.Match) -> str:
    """A \\u escape: such a character can only sit inside a JSON string, so the text stays the same JSON.
    A lone surrogate is no Unicode (jq makes it U+FFFD): one that stands for an undecodable byte is written
    as the facts write it, `\\xHH` (guestcheck/strictjson.py); any other as U+FFFD."""
    code = ord(match.group())
    if code < 0x20:  # json escapes these in strings itself: a raw one is the indentation's newline
        return match.group()
    if 0xD800 <= code <= 0xDFFF:
        return f"\\\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"
