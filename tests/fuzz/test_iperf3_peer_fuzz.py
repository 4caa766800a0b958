"""Hostile iperf3 peers and clients, through a scripted fake iperf3 on loopback (tests/fuzz/fake_iperf3.py).

The client side: `guestcheck selftest --peer 127.0.0.1:PORT` runs its real code path from argv to the
verdict, and the fake iperf3 prints what a hostile peer could make `iperf3 -c -J` print: any field of any
type (server_output_json included, which the peer writes), NaN, Infinity, integers of thousands of digits,
deep nesting, missing keys, damaged JSON, non-UTF-8 bytes, control characters in the error text.
The server side: `selftest --serve` reads a fake `iperf3 -s -J` stream whose per-test objects carry a
hostile client's extra data, stream count, address and figures.

The property: no traceback and no internal error; an exit code from the README's selftest table; faults
are one printable line; with --json, stdout is one valid JSON document (no NaN or Infinity) whose
exit_code is the process's, with `error` on a fault; the server leaves no iperf3 running.
"""

from __future__ import annotations

import copy
import json
import re
import string
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.fake_iperf3 import FakeIperf3, Reply, alive, free_port
from tests.fuzz.harness import assert_clean_exit, examples, run_guestcheck
from tests.unit.test_selftest_iperf3 import DOWNLOAD_1_STREAM, UPLOAD_2_STREAMS
from tests.unit.test_selftest_serve import RUN_1, RUN_2

FAULT = 10


class Raw(str):
    """JSON text written as it is: what json.dumps will not write (NaN, 5000-digit integers, deep nesting)."""


RAW_TOKENS = [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("9" * 5000), Raw("-" + "1" * 5000),
              Raw("1e999"), Raw("-1e999"), Raw("1" * 400 + ".5"), Raw("[" * 50000 + "]" * 50000),
              Raw('{"a":' * 20000 + "1" + "}" * 20000), Raw(str(10**400))]
HOSTILE_TEXT = st.text(alphabet=st.sampled_from(string.printable + "\x00\x1b[31m\x07\x7f\u202e\u2028\ud7ff\xe9"),
                       max_size=80)


def serialize(value: Any) -> str:
    """Compact JSON where Raw parts go in verbatim."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{serialize(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(serialize(v) for v in value) + "]"
    return json.dumps(value)


def pretty(doc: dict) -> str:
    """Like iperf3's cJSON: the top-level braces alone on their lines (how --serve splits its stream)."""
    return "{\n" + ",\n".join(f"\t{json.dumps(str(k))}:\t{serialize(v)}" for k, v in doc.items()) + "\n}\n"


scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), HOSTILE_TEXT, st.sampled_from(RAW_TOKENS))
hostile = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                       max_leaves=8)

CLIENT_PATHS = [
    ("end",), ("end", "sum_received"), ("end", "sum_received", "bits_per_second"), ("end", "sum_received", "seconds"),
    ("end", "sum_sent"), ("end", "sum_sent", "bits_per_second"), ("end", "sum_sent", "retransmits"),
    ("end", "cpu_utilization_percent"), ("end", "cpu_utilization_percent", "host_total"),
    ("end", "cpu_utilization_percent", "remote_total"), ("end", "streams"), ("end", "streams", 0),
    ("end", "streams", 0, "sender"), ("end", "streams", 0, "sender", "mean_rtt"),
    ("end", "streams", 0, "sender", "min_rtt"), ("start",), ("start", "version"), ("start", "connected"),
    ("intervals",), ("error",), ("server_output_json",), ("server_output_json", "end"),
    ("server_output_json", "end", "streams"), ("server_output_json", "end", "streams", 0, "sender", "mean_rtt"),
    ("server_output_json", "end", "streams", 0, "sender", "max_rtt"),
]
SERVER_PATHS = [
    ("start",), ("start", "connected"), ("start", "connected", 0), ("start", "connected", 0, "remote_host"),
    ("start", "accepted_connection"), ("start", "accepted_connection", "host"), ("start", "test_start"),
    ("start", "test_start", "num_streams"), ("start", "test_start", "reverse"), ("end",), ("end", "sum_received"),
    ("end", "sum_received", "bits_per_second"), ("end", "sum_sent", "bits_per_second"), ("extra_data",),
    ("error",),
]
hostile_tags = st.one_of(
    HOSTILE_TEXT,
    st.builds(lambda k, n: f"guestcheck-selftest/1 session=ab run={k}/{n}",
              st.sampled_from(["1", "0", "9" * 5000, "-1", "99999999"]), st.sampled_from(["2", "9" * 5000, "0"])),
)


def mutate(doc: dict, path: tuple, value: Any) -> dict:
    """`doc` with the value at `path` replaced (or deleted, for the "missing key" case); a fresh copy."""
    doc = copy.deepcopy(doc)
    node: Any = doc
    for key in path[:-1]:
        if isinstance(node, dict) and isinstance(key, str):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return doc
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = None if value is DELETE else value
    return doc


DELETE = object()


@st.composite
def client_reply(draw) -> Reply:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "whole", "garbage"]))
    base = draw(st.sampled_from([UPLOAD_2_STREAMS, DOWNLOAD_1_STREAM]))
    if kind == "mutated":
        doc = base
        for _ in range(draw(st.integers(1, 3))):
            doc = mutate(doc, draw(st.sampled_from(CLIENT_PATHS)), draw(st.one_of(hostile, st.just(DELETE))))
        text = serialize(doc)
    elif kind == "whole":  # the document itself is of the wrong shape
        text = serialize(draw(hostile))
    else:  # damaged: cut short, junk around it, bytes that are not UTF-8
        text = serialize(base)[: draw(st.integers(0, 400))] + draw(HOSTILE_TEXT)
    prefix = draw(st.sampled_from(["", "warning: something\n", "{not json\n"]))
    out = (prefix + text).encode("utf-8", "surrogatepass") + draw(st.sampled_from([b"", b"\xff\xfe\n"]))
    stderr = draw(st.one_of(st.just(""), HOSTILE_TEXT.map(lambda t: "iperf3: error - " + t)))
    return Reply(out, stderr.encode("utf-8", "surrogatepass"), draw(st.sampled_from([0, 1, 255])))


def check_output(out, as_json: bool) -> None:
    assert_clean_exit(out, "selftest")
    assert all(c.isprintable() for line in out.stderr.splitlines() for c in line), repr(out.stderr)
    if out.returncode >= FAULT:
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    if as_json:
        def refuse(token: str) -> Any:
            raise AssertionError(f"{token} in the JSON document")

        doc = json.loads(out.stdout, parse_constant=refuse)  # exactly one document, nothing after it
        assert doc["schema"] == "guestcheck.selftest/1" and doc["exit_code"] == out.returncode
        assert ("error" in doc) == (out.returncode >= FAULT)
    else:
        assert all(c.isprintable() for line in out.stdout.splitlines() for c in line), repr(out.stdout)


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> FakeIperf3:
    return FakeIperf3(tmp_path_factory.mktemp("fake-iperf3"))


@settings(max_examples=examples(30), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(replies=st.lists(client_reply(), min_size=1, max_size=4), as_json=st.booleans(),
       expect=st.sampled_from(["1", "1G"]))
def test_a_hostile_peer_never_causes_an_internal_error(fake, replies, as_json, expect):
    fake.script_client(replies)
    args = ["selftest", "--peer", f"127.0.0.1:{free_port()}", "--expect", expect, "--duration", "1",
            "--parallel", "2", "--timeout", "2"] + (["--json"] if as_json else [])
    out = run_guestcheck(args, env=fake.env)
    check_output(out, as_json)
    assert fake.ran("-c")


@pytest.mark.parametrize("path,value,code", [
    (("server_output_json",), ["a", "list"], 0),
    (("server_output_json",), "a string", 0),
    (("end", "sum_received", "bits_per_second"), Raw("9" * 5000), 18),
    (("end", "sum_received", "bits_per_second"), Raw("NaN"), 18),
    (("end", "sum_received"), [], 18),
    (("error",), {"not": "text"}, 18),
    (("start", "version"), Raw("[" * 50000 + "]" * 50000), 18),  # too deep to read: the whole reply is lost
], ids=["server-output-list", "server-output-string", "5000-digits", "nan", "sum-received-list", "error-dict",
        "deep-nesting"])
def test_the_reported_hostile_replies(fake, path, value, code):
    """The cases of issue 9: each an exit code from the table and a JSON document, never exit 3."""
    fake.script_client([Reply(serialize(mutate(DOWNLOAD_1_STREAM, path, value)).encode())])
    out = run_guestcheck(["selftest", "--peer", f"127.0.0.1:{free_port()}", "--expect", "1", "--duration", "1",
                          "--parallel", "1", "--direction", "download", "--json"], env=fake.env)
    check_output(out, True)
    assert out.returncode == code, out.stderr
    doc = json.loads(out.stdout)
    if code == 0:  # server_output_json is optional: the measurement stands, without the peer's RTT
        assert doc["runs"][0]["throughput_bps"] == pytest.approx(95814128.9) and doc["runs"][0]["rtt_mean_ms"] is None
    else:
        assert doc["error"]["kind"] == "iperf3-failed"


PLAIN_CLIENT = {k: v for k, v in RUN_2.items() if k != "extra_data"}  # a plain iperf3 client: ends --once


@st.composite
def served_stream(draw) -> tuple[bytes, bool]:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        doc = draw(st.sampled_from([RUN_1, RUN_2]))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(SERVER_PATHS))
            value = draw(hostile_tags if path == ("extra_data",) else st.one_of(hostile, st.just(DELETE)))
            doc = mutate(doc, path, value)
        parts.append(pretty(doc) if isinstance(doc, dict) else "")
        parts.append(draw(st.sampled_from(["", "WARNING: \x1b[2Jjunk\n", "{\n\t\"cut\": \n", "}\n"])))
    then_exit = draw(st.booleans())
    if not then_exit:
        parts.append(pretty(PLAIN_CLIENT))  # ends a --once session if nothing before it did
    return "".join(parts).encode("utf-8", "surrogatepass"), then_exit


@settings(max_examples=examples(25), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scripted=served_stream())
def test_a_hostile_client_never_kills_serve(fake, scripted):
    stream, then_exit = scripted
    fake.script_server(stream, then_exit=then_exit)
    out = run_guestcheck(["selftest", "--serve", "--once", "--port", str(free_port()), "--time-limit", "20"],
                         env=fake.env)
    check_output(out, False)
    assert out.returncode in (0, 18), out.stderr
    assert fake.ran("-s")
    pid = fake.server_pid()
    if pid is not None:
        deadline = time.monotonic() + 2
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the iperf3 server outlived selftest --serve"


def test_a_5000_digit_run_number_in_extra_data_is_only_a_foreign_tag(fake):
    """Issue 9: this killed --serve (int() of 5000 digits). Now it is not our tag: a plain client's test."""
    tagged = {**RUN_1, "extra_data": f"guestcheck-selftest/1 session=ab run={'9' * 5000}/2"}
    fake.script_server(pretty(tagged).encode(), then_exit=False)
    out = run_guestcheck(["selftest", "--serve", "--once", "--port", str(free_port()), "--time-limit", "20"],
                         env=fake.env)
    check_output(out, False)
    assert out.returncode == 0, out.stderr
    served = [line for line in out.stdout.splitlines() if "served 10.198.0.1" in line]
    assert len(served) == 1 and re.search(r"received 95\.6 Mbit/s$", served[0]), out.stdout
