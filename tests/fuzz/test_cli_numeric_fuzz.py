"""The command line's numeric options: `doctor --sample` and `facts --sample` (through click and through the
click-free fast path in guestcheck/entry.py).

A value that is not a number of seconds from 0 to 3600 (NaN, infinity, 1e400, a 400-digit integer, a negative,
hex, garbage) is a usage error: one "Error:" line, exit code 3 (README: doctor, facts and explain share
Nagios' codes). A valid value never crashes. `tune` has no numeric option; selftest's (--duration, --parallel,
--timeout, --expect, --time-limit) are fuzzed by the selftest suite, not here, so nothing here can start a test
against a peer.
"""

from __future__ import annotations

import json
import math
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional

import click
from hypothesis import given, settings
from hypothesis import strategies as st

from guestcheck.cli import SampleSeconds
from guestcheck.entry import fast_doctor_options
from guestcheck.quantities import MAX_SAMPLE_SECONDS
from tests.fuzz.harness import assert_clean_exit, changed_outside, run_guestcheck, tree

QUICK = 0.2  # valid values up to this are run for real; longer ones only parsed (with --facts)
ODD = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400", str(10**400), "-" + str(10**400),
       "10**400", "1e-400", "-0", "-0.0", "0", "0.", ".0", ".", "3600", "3600.0000001", "3601", "1_0", "0x10", "0b1",
       "1e3", "3.6e3", "3.6e+3", "1e99999", "", " ", " 1 ", "\t0.1", "\u0661", "\uff11", "1,5", "--json", "-v",
       "1e", "e1", "+1", "1e-99999", "0E-1000000"]

sample_texts = st.one_of(
    st.sampled_from(ODD),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=0, max_value=MAX_SAMPLE_SECONDS * 2).map(str),
    st.integers(-10**500, 10**500).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
)


def expected_seconds(text: str) -> Optional[float]:
    """An oracle apart from the code under test: a plain decimal (digits, one point, an exponent) whose exact
    value lies in 0..3600 is valid; everything else is not."""
    body = text.strip()
    if not body or any(c not in "0123456789.eE+-" for c in body) or body[0] in "+-eE":
        return None
    try:
        value = Decimal(body)
    except InvalidOperation:
        return None
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(str(MAX_SAMPLE_SECONDS)):
        return None
    return float(value)


def _click_seconds(text: str) -> Optional[float]:
    try:
        return SampleSeconds().convert(text, None, None)
    except click.BadParameter:
        return None


@given(sample_texts)
def test_click_and_the_fast_path_take_exactly_the_same_values(text):
    expected = expected_seconds(text)
    via_click = _click_seconds(text)
    fast = fast_doctor_options(["doctor", "--sample", text])
    if expected is None:
        assert via_click is None and fast is None, (text, via_click, fast)
    else:
        assert via_click is not None and math.isclose(via_click, expected), (text, via_click)
        assert fast is not None and fast["sample_seconds"] == via_click
    assert fast_doctor_options(["doctor", f"--sample={text}"]) == fast


def assert_usage_error(out, value: str) -> None:
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert out.returncode == 3 and out.stdout == "", (out.returncode, out.stderr)
    assert errors == [errors[0]] and "is not a number of seconds from 0 to 3600" in errors[0], out.stderr
    assert len(errors[0]) < 200


@settings(max_examples=max(8, settings.default.max_examples // 2))  # ci: 20 examples, 2 processes each
@given(sample_texts, st.sampled_from(["doctor", "facts"]), st.booleans())
def test_sample_is_a_one_line_usage_error_or_works(value, command, equals_form):
    option = [f"--sample={value}"] if equals_form else ["--sample", value]
    expected = expected_seconds(value)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        facts = root / "saved-facts.json"
        facts.write_text(json.dumps({"schema": "guestcheck.facts/1"}))
        (root / "empty-machine").mkdir()
        before = tree(root)
        env = {"GUESTCHECK_ROOT": str(root / "empty-machine")}  # an empty machine: every collector degrades
        runs = []
        if command == "doctor":  # parsed by click, then not used: any valid value is quick
            runs.append(["doctor", "--facts", str(facts), "--json", *option])
        if expected is None or expected <= QUICK:  # the fast path (doctor) or a real, short collection (facts)
            runs.append([command, *option, "--json"] if command == "doctor" else [command, *option])
        for args in runs:
            out = run_guestcheck(args, env=env, timeout=60)
            assert_clean_exit(out, command)
            if expected is None:
                assert_usage_error(out, value)
            else:
                assert "Error" not in out.stderr, out.stderr
                doc = json.loads(out.stdout)  # both print JSON here
                assert doc["schema"] in ("guestcheck.doctor/1", "guestcheck.facts/1")
        assert changed_outside(before, tree(root), []) == []
