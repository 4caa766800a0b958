"""The machine-readable report (schema documented in README.md)."""

from __future__ import annotations

import json
from typing import Any


def dumps(document: dict[str, Any], *, pretty: bool = True) -> str:
    """Indented for people; compact for pipes, where json's C encoder makes it ~8x faster to write."""
    if pretty:
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n"
