"""A saved facts file (or doctor report) given with `--facts FILE`: read and checked strictly, for doctor and tune
alike. A damaged one is a FactsFileError with one line; each command maps it to its own exit code.

The bounds keep the largest file allowed under 5 s and 1 GiB (bench/facts_load.py): the size, and the number
of objects and arrays and of values, counted before the parse (Python's parser needs ~80 bytes per empty
object, the facts ~500 per object built). A machine's facts are ~10 KiB, 80 objects and arrays and 500 values
per interface, so the bounds leave room for some 3,000 interfaces.
"""

from __future__ import annotations

import gc
from typing import Any

MAX_FACTS_BYTES = 64 << 20  # a machine's facts are a few hundred KiB
MAX_FACTS_CONTAINERS = 250_000  # objects and arrays
MAX_FACTS_VALUES = 1_500_000  # values of every kind (objects and arrays included), members of objects too


class FactsFileError(Exception):
    """Why a facts file cannot be used, in one line, control characters escaped."""


def load_facts_file(path: str) -> Any:
    from guestcheck.facts import FactsError, facts_from_dict
    from guestcheck.regularfile import read_regular
    from guestcheck.strictjson import count_outside_strings, loads
    from guestcheck.text import escape_control

    def refuse(message: str) -> FactsFileError:
        return FactsFileError(escape_control(message))

    try:
        data = read_regular(path, MAX_FACTS_BYTES)
    except OSError as e:
        raise refuse(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise refuse(f"cannot read {path}: {e}") from None
    containers, commas = count_outside_strings(data)
    if containers > MAX_FACTS_CONTAINERS:
        raise refuse(f"{path} is not a guestcheck facts file: {containers} objects and arrays "
                     f"(at most {MAX_FACTS_CONTAINERS})")
    values = containers + commas + 1  # each value but the first of an object or array follows a comma
    if values > MAX_FACTS_VALUES:
        raise refuse(f"{path} is not a guestcheck facts file: {values} values (at most {MAX_FACTS_VALUES})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse(f"{path} is not JSON: not UTF-8 text") from None
    del data
    collecting = gc.isenabled()
    gc.disable()  # the objects built are all kept: collections halfway find nothing and cost a third more time
    try:
        try:
            document = loads(text)
        except ValueError as e:
            raise refuse(f"{path} is not JSON: {e}") from None
        del text
        try:
            return facts_from_dict(document)
        except FactsError as e:
            raise refuse(f"{path} is not a guestcheck facts file: {e}") from None
    finally:
        if collecting:
            gc.enable()
