"""guestcheck/text.py: one shell word per value, and nothing a terminal would obey."""

from __future__ import annotations

import shlex
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from guestcheck.text import escape_control, is_plain, plain_or, shell_word


@given(st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
               | st.sampled_from(" \n")))
def test_shell_word_gives_the_value_back_as_one_word(value):
    # what Python calls printable (of the separators, the plain space only) and newlines; the rest is spelled for
    # printf, held by the test below
    assert shlex.split(f"ethtool -K {shell_word(value)} gro on") == ["ethtool", "-K", value, "gro", "on"]


@given(st.text())
def test_escaped_text_has_no_control_or_bidi_characters(value):
    shown = escape_control(value)
    assert not [ch for ch in shown if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")
                or 0x202a <= ord(ch) <= 0x202e or 0x2066 <= ord(ch) <= 0x2069]
    if all(ch.isprintable() and unicodedata.category(ch) != "Cf" for ch in value):
        assert shown == value  # ordinary text is left alone


def test_escapes_are_visible():
    assert escape_control("eth0\x1b[31m\n\t\r\x00\x9b\u202e\ud800\U000e0041") == (
        "eth0\\x1b[31m\\n\\t\\r\\x00\\x9b\\u202e\\ud800\\U000e0041")
    assert escape_control(3) == "3" and escape_control("ens3 \u00e9t\u00e9 ok") == "ens3 \u00e9t\u00e9 ok"


def test_plain_words():
    assert is_plain("eth0.100") and is_plain("br-lan") and is_plain("enp0s3:1")
    assert not any(is_plain(v) for v in ("a b", "a'b", 'a"b', "", "a;b", "a\nb"))
    assert plain_or("eth0", "IFACE") == "eth0" and plain_or("e;th0", "IFACE") == "IFACE"


@given(st.binary(min_size=1, max_size=24).filter(lambda b: b"\0" not in b))
def test_shell_word_of_any_name_is_printable_ascii_that_sh_turns_back_into_its_bytes(raw):
    """A kernel name is bytes (0xff, ESC, BEL): the printed word is safe for a terminal and pastes to those bytes."""
    import os
    import subprocess

    word = shell_word(os.fsdecode(raw))
    assert (word.replace("\n", "")).isprintable()
    out = subprocess.run(["sh", "-c", f"printf %s {word}"], capture_output=True, timeout=10, check=True).stdout
    assert out == raw
