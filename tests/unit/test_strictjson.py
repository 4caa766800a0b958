"""guestcheck/strictjson.py: what Python's json lets through oddly is a one-line ValueError here."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# --- counting objects, arrays and commas before a parse (issue 18, item 5) ---

@pytest.mark.parametrize("text,counts", [
    (b'{"a": [1, 2, {}]}', (3, 2)),
    (b'["{[,", "\\"{[", "\\\\", {}]', (2, 3)),  # braces, commas and escaped quotes inside strings do not count
    (b'["\\\\\\"[", []]', (2, 1)),  # \\ then \" inside the string: still inside it
    (b'"unterminated [{,', (0, 0)),
    (b'', (0, 0)),
])
def test_counts_outside_strings(text, counts):
    from guestcheck.strictjson import count_outside_strings

    assert count_outside_strings(text) == counts


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='{}[],"\\:x\u00e9\n'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='{}[],"\\x'), inner, max_size=4),
    max_leaves=30)


def _containers_and_commas(value: object) -> tuple[int, int]:
    if isinstance(value, (list, dict)):
        items = list(value.values()) if isinstance(value, dict) else value
        inner = [_containers_and_commas(v) for v in items]
        return 1 + sum(c for c, _ in inner), max(len(items) - 1, 0) + sum(n for _, n in inner)
    return 0, 0


@given(json_values, st.booleans())
def test_counts_match_the_parsed_document(value, indent):
    """Exact for valid JSON, whatever the strings hold: the bound refuses no good file and lets no bad one by."""
    from guestcheck.strictjson import count_outside_strings

    text = json.dumps(value, indent=2 if indent else None, ensure_ascii=False).encode()
    assert count_outside_strings(text) == _containers_and_commas(value)


def test_counting_is_linear_in_chunks():
    """A string that spans the scanner's chunks, and 3 MiB of tiny strings, count right."""
    from guestcheck.strictjson import _SCAN_CHUNK, count_outside_strings

    long = b'["' + b"[{," * _SCAN_CHUNK + b'", [], {}]'
    assert count_outside_strings(long) == (3, 2)
    tiny = b"[" + b'"",' * (1 << 20) + b"{}]"
    assert count_outside_strings(tiny) == (2, 1 << 20)
