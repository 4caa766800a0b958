"""Reading outside JSON: NaN, Infinity, integers past Python's 4300-digit limit and deep nesting are "no
value", never an exception; the getters check type and range; text is made safe for a terminal."""

from __future__ import annotations

import json

import pytest

from guestcheck.selftest.untrusted import (
    Damaged,
    as_dict,
    as_list,
    load_object,
    number,
    parse,
    printable,
    text,
    whole,
)


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000, "-" + "9" * 5000,
                                 "1" * 31])
def test_numbers_json_would_not_survive_are_no_value(raw):
    doc = load_object('{"x": ' + raw + "}")
    assert doc is not None and number(doc["x"], -1e308, 1e308) is None and whole(doc["x"], -(2**62), 2**62) is None
    with pytest.raises(TypeError):  # and the marker never reaches a JSON document by mistake
        json.dumps(doc)


@pytest.mark.parametrize("textual", ["[" * 100000 + "]" * 100000, '{"a":' * 100000 + "1" + "}" * 100000, "{",
                                     "", "[1]", '"s"', '{"a": 1} trailing', "\udcff"])
def test_load_object_gives_none_for_anything_but_a_readable_object(textual):
    obj = load_object(textual)
    assert obj is None or obj == {"a": 1}  # raw_decode reads the first object and leaves the rest


def test_parse_reads_the_whole_text_and_says_why_not():
    assert parse(' {"a": [1, 2.5]} ') == {"a": [1, 2.5]}
    with pytest.raises(Damaged, match=r"not JSON \(Extra data at line 1 column 10\)"):
        parse('{"a": 1} x')
    with pytest.raises(Damaged, match=r"not JSON we can read \(RecursionError\)"):
        parse("[" * 100000 + "]" * 100000)


def test_getters_check_type_and_range():
    assert number(True, 0, 10) is None and number("5", 0, 10) is None and number(None, 0, 10) is None
    assert number(5, 0, 10) == 5.0 and isinstance(number(5, 0, 10), float)
    assert number(11, 0, 10) is None and number(-0.5, 0, 10) is None
    assert number(10**400, 0, 1e308) is None  # compared exactly, never float(10**400) -> OverflowError
    assert whole(3.0, 0, 10) is None and whole(False, 0, 10) is None and whole(3, 0, 10) == 3
    assert as_dict([1]) == {} and as_dict({"a": 1}) == {"a": 1}
    assert as_list("abc") == [] and as_list([1]) == [1]


def test_text_reaches_a_terminal_as_one_printable_line():
    assert printable("eth0\x1b[2J;curl x|sh\n#") == "eth0\\x1b[2J;curl x|sh #"
    assert printable("a\u202eb") == "a\\u202eb"  # right-to-left override, a Cf character
    assert printable("x" * 1000, 10) == "x" * 10 + "..."
    assert printable("a \t\n b") == "a b"
    assert text(["not", "text"]) is None and text("ok") == "ok"
