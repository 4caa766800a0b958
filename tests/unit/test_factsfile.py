"""guestcheck/factsfile.py: a facts file is bounded before it is parsed, and loads in linear time (issue 18, item 5).

The timings and peak memory of the largest files allowed are in bench/facts_load.py (a bench, not a timed test);
here: the bounds refuse with the one-line error and exit 3, the count comes before the parse, and the type hints
are looked up once per class, not once per object.
"""

from __future__ import annotations

import typing

import pytest

from guestcheck import facts, factsfile
from guestcheck.factsfile import MAX_FACTS_CONTAINERS, MAX_FACTS_VALUES, FactsFileError, load_facts_file
from tests.unit.test_cli import assert_one_line_error, guestcheck

HEAD = '{"schema":"guestcheck.facts/1",'


def _counters(n: int) -> str:
    """A facts file of n empty counters: n + 4 objects and arrays, n + 7 values."""
    counters = ",".join(f'"c{i}":{{}}' for i in range(n))
    return HEAD + '"nic_counters":[{"nic":"eth0","interface":{' + counters + "}}]}"


def test_over_the_bound_of_objects_is_refused_with_one_line_and_exit_3(tmp_path):
    bad = tmp_path / "facts.json"
    bad.write_text(_counters(MAX_FACTS_CONTAINERS - 3))
    for fmt in ("human", "json", "prometheus"):
        out = guestcheck("doctor", "--facts", str(bad), "--format", fmt)
        assert out.returncode == 3 and out.stdout == "", out.stderr
        assert_one_line_error(out)
        assert f"{MAX_FACTS_CONTAINERS + 1} objects and arrays (at most {MAX_FACTS_CONTAINERS})" in out.stderr


def test_at_the_bound_of_objects_it_loads(tmp_path):
    good = tmp_path / "facts.json"
    good.write_text(_counters(MAX_FACTS_CONTAINERS - 4))
    facts = load_facts_file(str(good))
    assert len(facts.nic_counters[0].interface) == MAX_FACTS_CONTAINERS - 4


def test_over_the_bound_of_values_is_refused(tmp_path):
    bad = tmp_path / "facts.json"
    bad.write_text(HEAD + '"problems":[' + ",".join(["0"] * MAX_FACTS_VALUES) + "]}")
    with pytest.raises(FactsFileError, match=r"values \(at most"):
        load_facts_file(str(bad))


def test_braces_inside_strings_do_not_count(tmp_path):
    good = tmp_path / "facts.json"
    good.write_text(HEAD + '"problems":["' + "{[," * (MAX_FACTS_VALUES + 1) + '"]}')
    assert str(load_facts_file(str(good)).problems[0]).startswith("{[,")


def test_the_count_comes_before_the_parse(tmp_path, monkeypatch):
    """64 MiB of `[]` would take 1.7 GiB to parse: it is refused without being parsed."""
    import guestcheck.strictjson

    def no_parse(text: str) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(guestcheck.strictjson, "loads", no_parse)
    bad = tmp_path / "facts.json"
    bad.write_bytes(b"[" + b"[]," * (MAX_FACTS_CONTAINERS + 1) + b"[]]")
    with pytest.raises(FactsFileError, match="objects and arrays"):
        load_facts_file(str(bad))


def test_type_hints_are_looked_up_once_per_class(tmp_path, monkeypatch):
    """A million empty counters took 40 s of CPU because every object looked its class's hints up again."""
    calls = []
    real = typing.get_type_hints

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(typing, "get_type_hints", counting)
    monkeypatch.setattr(facts, "_CONVERTERS", {})  # cold caches, as in a new process
    monkeypatch.setattr(facts, "_FIELDS", {})
    good = tmp_path / "facts.json"
    good.write_text(_counters(20_000))
    load_facts_file(str(good))
    load_facts_file(str(good))
    assert sorted(c.__name__ for c in calls) == ["CounterRate", "Facts", "NicCounters"]  # once each


def test_the_size_bound_is_checked_first(tmp_path, monkeypatch):
    monkeypatch.setattr(factsfile, "MAX_FACTS_BYTES", 100)
    big = tmp_path / "facts.json"
    big.write_text(HEAD + '"problems":["' + "x" * 100 + '"]}')
    with pytest.raises(FactsFileError, match="larger than 100 bytes"):
        load_facts_file(str(big))
