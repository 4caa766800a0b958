"""guestcheck/render/json.py: always strict JSON, and nothing in it a terminal would obey."""

from __future__ import annotations

import json

import pytest

from guestcheck.render.json import dumps


def strict(text: str):
    def refuse(token: str):
        raise ValueError(token)

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("pretty", [True, False])
def test_nan_and_infinity_become_null(pretty):
    text = dumps({"share": float("nan"), "rates": [float("inf"), -float("inf"), 1.5], "n": 3}, pretty=pretty)
    assert strict(text) == {"share": None, "rates": [None, None, 1.5], "n": 3}


def test_control_bidi_and_surrogate_characters_are_escaped_and_read_back():
    name = "eth0\x1b[2J\x7f\x9b\u202e\U000e0041é"
    text = dumps({"name": name + "\udcff\ud800"})
    assert text.isascii() is False and all(ch == "\n" or ch.isprintable() for ch in text)
    # a lone surrogate is no Unicode (jq reads U+FFFD): an undecodable byte is written \xHH, as in the facts
    assert strict(text) == {"name": name + "\\xff\ufffd"}
    text.encode("utf-8")  # writable as UTF-8
