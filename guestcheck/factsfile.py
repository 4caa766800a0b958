"""A saved facts file (or doctor report) given with `--facts FILE`: read and checked strictly, for doctor and tune
alike. A damaged one is a FactsFileError with one line; each command maps it to its own exit code."""

from __future__ import annotations

from typing import Any

MAX_FACTS_BYTES = 64 << 20  # a machine's facts are a few hundred KiB


class FactsFileError(Exception):
    """Why a facts file cannot be used, in one line, control characters escaped."""


def load_facts_file(path: str) -> Any:
    from guestcheck.facts import FactsError, facts_from_dict
    from guestcheck.regularfile import read_regular
    from guestcheck.strictjson import loads
    from guestcheck.text import escape_control

    def refuse(message: str) -> FactsFileError:
        return FactsFileError(escape_control(message))

    try:
        text = read_regular(path, MAX_FACTS_BYTES).decode("utf-8")
    except OSError as e:
        raise refuse(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise refuse(f"{path} is not JSON: not UTF-8 text") from None
    except ValueError as e:
        raise refuse(f"cannot read {path}: {e}") from None
    try:
        data = loads(text)
    except ValueError as e:
        raise refuse(f"{path} is not JSON: {e}") from None
    try:
        return facts_from_dict(data)
    except FactsError as e:
        raise refuse(f"{path} is not a guestcheck facts file: {e}") from None
