"""The machine-readable report (schema documented in README.md)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

# a lone surrogate: os.listdir's stand-in for a non-UTF-8 byte in an interface name; it cannot be written as UTF-8
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    if _SURROGATE.search(text):  # \udcxx escapes instead: still JSON, and writable
        text = json.dumps(document, ensure_ascii=True, allow_nan=False, **options)
    return text + "\n"
