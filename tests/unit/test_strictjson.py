"""guestcheck/strictjson.py: what Python's json lets through oddly is a one-line ValueError here."""

from __future__ import annotations

import pytest

from guestcheck.strictjson import JSONInputError, loads


@pytest.mark.parametrize("text,why", [
    ('{"a": NaN}', "NaN is not a JSON number"),
    ("[Infinity]", "Infinity is not a JSON number"),
    ("-Infinity", "-Infinity is not a JSON number"),
    ("1e400", "out of range"),
    ("-1e400", "out of range"),
    ("1" * 41, "41 digits is out of range"),
    ("9" * 5000, "5000 digits"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ("{broken", "line 1 column 2"),
    ("", "Expecting value"),
])
def test_refused_with_one_line(text, why):
    with pytest.raises(JSONInputError) as e:
        loads(text)
    assert why in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)


def test_ordinary_json_is_read_as_json():
    assert loads('{"a": [1, -2.5, 1e300, 18446744073709551615, "x\\u001b", null, true]}') == {
        "a": [1, -2.5, 1e300, 18446744073709551615, "x\x1b", None, True]}
