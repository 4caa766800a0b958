"""selftest's numeric options (--duration, --parallel, --timeout, --expect, --time-limit, --port) as a user
could type them: NaN, infinities, negatives, thousands of digits, "1_0", other scripts' digits, control
characters, empty strings.

A bad value gives one line and exit 15 (bad-input) before anything runs: the fake iperf3 first on PATH
(tests/fuzz/fake_iperf3.py) logs every call, and none is made. A valid value is accepted and reaches
iperf3 as the number it means (its argv and the JSON document say so). Nothing leaves loopback.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.fake_iperf3 import FakeIperf3, Reply, free_port
from tests.fuzz.harness import assert_clean_exit, examples, run_guestcheck
from tests.fuzz.test_iperf3_peer_fuzz import PLAIN_CLIENT, mutate, pretty
from tests.unit.test_selftest_iperf3 import UPLOAD_2_STREAMS

BAD_INPUT = 15
CLIENT_OPTIONS = ("--duration", "--parallel", "--timeout", "--expect", "--port")
SERVE_OPTIONS = ("--time-limit", "--port")
NEAR_ANY_EXPECT = mutate(UPLOAD_2_STREAMS, ("end", "sum_received", "bits_per_second"), 9.9e14)  # > 10 Tbit/s

ALWAYS_BAD = ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "-0", "1e3", "0x10", "", " ", "9" * 5000, "1_0", "+5",
              "\u0663", "\uff15", "1.5.2", "10\x1b[2J", "1 2", "--", "5;reboot", "1e999", "-" + "9" * 400]
OUT_OF_RANGE = {
    "--duration": ["0", "3601", "1.5", "61m", "2h", "500ms"],
    "--parallel": ["0", "129", "1.0", "4294967297"],
    "--timeout": ["0", "0.05", "3601", "99ms", "2h"],
    "--expect": ["0", "100MB", "11T", "1GB/s", "0.0k"],
    "--time-limit": ["0.05", "604801", "169h", "50ms"],
    "--port": ["0", "65536", "99999"],
}
no_digits = st.text(st.characters(blacklist_characters="\x00"), max_size=12).filter(
    lambda t: not any(c.isdigit() for c in t))  # argv cannot carry NUL


@st.composite
def bad_value(draw, options: tuple[str, ...]) -> tuple[str, str]:
    option = draw(st.sampled_from(options))
    return option, draw(st.one_of(st.sampled_from(ALWAYS_BAD), st.sampled_from(OUT_OF_RANGE[option]), no_digits))


def _duration(seconds: int) -> st.SearchStrategy[tuple[str, Any]]:
    return st.sampled_from([(str(seconds), seconds), (f"{seconds}s", seconds), (f" {seconds} ", seconds)])


VALID: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    "--duration": st.one_of(st.integers(1, 3600).flatmap(_duration),
                            st.integers(1, 60).map(lambda m: (f"{m}m", m * 60))),
    "--parallel": st.integers(1, 128).map(lambda n: (str(n), n)),
    "--timeout": st.one_of(st.integers(1, 3600).map(lambda s: (str(s), s)),
                           st.integers(100, 60000).map(lambda ms: (f"{ms}ms", ms / 1000))),
    "--expect": st.tuples(st.integers(1, 9999), st.sampled_from([("", 1), ("k", 1e3), ("M", 1e6), ("G", 1e9)]))
                  .map(lambda t: (f"{t[0]}{t[1][0]}", t[0] * t[1][1])),
    "--port": st.integers(1, 65535).map(lambda p: (str(p), p)),
}


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> FakeIperf3:
    return FakeIperf3(tmp_path_factory.mktemp("fake-iperf3"))


def assert_refused(out, option: str) -> None:
    assert_clean_exit(out, "selftest")
    assert out.returncode == BAD_INPUT, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: Invalid value for '{option}'"), out.stderr
    assert len(lines[0]) < 600 and lines[0].isprintable(), lines[0]


SLOW = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=examples(30), suppress_health_check=SLOW)
@given(case=bad_value(CLIENT_OPTIONS), as_json=st.booleans())
def test_a_bad_client_value_is_refused_before_iperf3_runs(fake, case, as_json):
    option, value = case
    fake.script_client([Reply(json.dumps(NEAR_ANY_EXPECT).encode())])
    out = run_guestcheck(["selftest", "--peer", "127.0.0.1", "--expect", "1G", f"{option}={value}"]
                         + (["--json"] if as_json else []), env=fake.env)
    assert_refused(out, option)
    assert fake.calls() == []
    if as_json:
        assert json.loads(out.stdout)["error"]["kind"] == "bad-input"


@settings(max_examples=examples(15), suppress_health_check=SLOW)
@given(case=bad_value(SERVE_OPTIONS))
def test_a_bad_serve_value_is_refused_before_iperf3_runs(fake, case):
    option, value = case
    fake.script_server(pretty(PLAIN_CLIENT).encode(), then_exit=False)
    out = run_guestcheck(["selftest", "--serve", "--once", f"{option}={value}"], env=fake.env)
    assert_refused(out, option)
    assert fake.calls() == []


@settings(max_examples=examples(25), suppress_health_check=SLOW)
@given(data=st.data(), option=st.sampled_from(CLIENT_OPTIONS))
def test_a_valid_client_value_reaches_iperf3_as_the_number_it_means(fake, data, option):
    text, meant = data.draw(VALID[option])
    fake.script_client([Reply(json.dumps(NEAR_ANY_EXPECT).encode())])
    args = {"--peer": f"127.0.0.1:{free_port()}", "--expect": "1", "--direction": "upload", "--parallel": "1",
            "--duration": "1", "--timeout": "2"}
    if option == "--port":
        args["--peer"] = "127.0.0.1"
    args[option] = text
    out = run_guestcheck(["selftest", "--json", *(f"{k}={v}" for k, v in args.items())], env=fake.env)
    assert_clean_exit(out, "selftest")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    argv = next(call for call in fake.calls() if "-c" in call)
    given_to_iperf3 = {flag: argv[argv.index(flag) + 1] for flag in ("-p", "-t", "-P", "--connect-timeout")}
    if option == "--port":
        assert given_to_iperf3["-p"] == str(meant) and doc["peer"]["port"] == meant
    elif option == "--duration":
        assert given_to_iperf3["-t"] == str(meant) and doc["settings"]["duration_s"] == meant
    elif option == "--parallel":
        assert doc["settings"]["parallel"] == meant
        assert [r["streams"] for r in doc["runs"]] == ([1] if meant == 1 else [1, meant])
    elif option == "--timeout":
        assert given_to_iperf3["--connect-timeout"] == str(round(meant * 1000))
        assert doc["settings"]["timeout_s"] == pytest.approx(meant)
    else:
        assert doc["expected"] == {"bps": meant, "source": "--expect", "interface": None}


@settings(max_examples=examples(12), suppress_health_check=SLOW)
@given(case=st.one_of(st.just(("0", None)), st.integers(1, 7 * 86400).map(lambda s: (str(s), s)),
                      st.integers(1, 168).map(lambda h: (f"{h}h", h * 3600))))
def test_a_valid_time_limit_is_accepted_and_shown(fake, case):
    text, meant = case
    fake.script_server(pretty(PLAIN_CLIENT).encode(), then_exit=False)
    out = run_guestcheck(["selftest", "--serve", "--once", "--port", str(free_port()), f"--time-limit={text}"],
                         env=fake.env)
    assert_clean_exit(out, "selftest")
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.endswith(f"time limit {meant:g}s" if meant else "no time limit"), first


@settings(max_examples=examples(15), suppress_health_check=SLOW)
@given(option=st.sampled_from(CLIENT_OPTIONS), value=st.text(st.characters(blacklist_characters="\x00"), max_size=10))
def test_any_text_is_either_refused_in_one_line_or_accepted(fake, option, value):
    fake.script_client([Reply(json.dumps(NEAR_ANY_EXPECT).encode())])
    out = run_guestcheck(["selftest", "--peer", f"127.0.0.1:{free_port()}" if option != "--port" else "127.0.0.1",
                          "--expect", "1", "--direction", "upload", "--duration", "1", "--parallel", "1",
                          f"{option}={value}"], env=fake.env)
    assert_clean_exit(out, "selftest")
    if out.returncode == BAD_INPUT:
        assert_refused(out, option)
        assert fake.calls() == []
    else:
        assert out.returncode == 0, out.stderr
