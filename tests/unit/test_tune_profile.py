"""Profile parsing: TuneD syntax, includes, cycles, raise-only, errors with file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guestcheck.sysctlnames import normalise_key
from guestcheck.tune import profile as profile_module
from guestcheck.tune.profile import (
    MAX_FILE_BYTES,
    MAX_INCLUDE_DEPTH,
    MAX_INCLUDED_FILES,
    MAX_KEYS,
    MAX_TOTAL_BYTES,
    Guards,
    Loader,
    ProfileError,
    available,
    load,
    parse_text,
    profile_dirs,
)
from tests.tune_fake import REPO, FakeKernel, write_profile

GOOD = """\
# a comment
[main]
summary = big buffers
[guestcheck]
min_ram_mb = 2048
requires_guaranteed_memory = yes

[sysctl]
# reason: room for the window
net.ipv4.tcp_rmem = >4096 87380 16777216
# reason: reuse ports
net/ipv4/tcp_tw_reuse = 1
net.ipv4.tcp_fin_timeout=15
"""


def test_parses_sections_raise_only_reasons_and_guards():
    p = parse_text(GOOD, "big", "/x/big.conf")
    assert p.summary == "big buffers"
    assert p.guards == Guards(min_ram_mb=2048, requires_guaranteed_memory=True)
    rmem = p.settings["net.ipv4.tcp_rmem"]
    assert (rmem.value, rmem.raise_only, rmem.reason) == ("4096 87380 16777216", True, "room for the window")
    assert rmem.where == "/x/big.conf:10"
    assert p.settings["net.ipv4.tcp_tw_reuse"].reason == "reuse ports"  # slash form normalised
    assert p.settings["net.ipv4.tcp_fin_timeout"].reason == ""  # no comment right above: no reason
    assert list(p.settings) == ["net.ipv4.tcp_rmem", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_fin_timeout"]


def test_source_lines_are_kept_with_their_key_and_shares_parse():
    p = parse_text("[guestcheck]\nmax_buffer_share = 1/32\n[sysctl]\n# reason: r\n# source: TuneD \x1b[31m\n"
                   "net.a = 1\n# source: orphan\n\nnet.b = 2\n", "s", "s.conf")
    assert p.settings["net.a"].source == "TuneD \\x1b[31m" and p.settings["net.a"].reason == "r"
    assert p.settings["net.b"].source == ""  # a blank line ends a comment block
    assert p.guards.max_buffer_share == Fraction(1, 32)
    assert Guards(max_buffer_share=Fraction(1, 8)).merged(p.guards).max_buffer_share == Fraction(1, 32)
    assert Guards().merged(Guards()).max_buffer_share is None


@pytest.mark.parametrize("value", ["0", "1", "2/3", "1/0", "1/2000", "0.6", "-1/16", "1e-2", "nan", "1/16/2", ""])
def test_a_bad_max_buffer_share_names_the_line(value):
    with pytest.raises(ProfileError, match=r"s.conf:2: max_buffer_share must be a fraction"):
        parse_text(f"[guestcheck]\nmax_buffer_share = {value}\n", "s", "s.conf")


def test_normalise_key_follows_sysctl_d():
    assert normalise_key("net/ipv4/conf/eth0.100/rp_filter") == "net.ipv4.conf.eth0/100.rp_filter"
    assert normalise_key("net.ipv4.conf.eth0/100.rp_filter") == "net.ipv4.conf.eth0/100.rp_filter"


@pytest.mark.parametrize(("text", "line", "words"), [
    ("[sysctl]\nnet.ipv4.tcp_rmem\n", 2, "expected KEY = VALUE"),
    ("net.ipv4.tcp_rmem = 1\n", 1, "outside any section"),
    ("[main]\nsummary = x\n[bogus]\n", 3, "unknown section [bogus]"),
    ("[sysctl\n", 1, "unclosed section"),
    ("[sysctl]\n\n\nnet.ipv4.tcp_rmem = >4096 big 1\n", 4, "raise-only (>) needs whole numbers"),
    ("[sysctl]\nnet..ipv4 = 1\n", 2, "is not a sysctl name"),
    ("[sysctl]\nnet.ipv4.* = 1\n", 2, "no globs"),
    ("[sysctl]\nnet.ipv4.tcp_sack =\n", 2, "has no value"),
    ("[guestcheck]\nmin_ram_mb = lots\n", 2, "whole number of MiB"),
    ("[guestcheck]\nrequires_guaranteed_memory = maybe\n", 2, "yes or no"),
    ("[guestcheck]\ncolour = red\n", 2, "unknown key 'colour'"),
    ("[main]\ninclude = ../etc/passwd\n", 2, "bad profile name"),
    ("[main]\n[main]\n", 2, "appears twice"),
])
def test_bad_lines_name_file_and_line(text, line, words):
    with pytest.raises(ProfileError) as e:
        parse_text(text, "p", "/profiles/p.conf")
    assert str(e.value).startswith(f"/profiles/p.conf:{line}: ")
    assert words in str(e.value)


def test_include_chain_later_wins_and_guards_add_up(tmp_path):
    write_profile(tmp_path, "base", "[main]\nsummary=base\n[guestcheck]\nmin_ram_mb=512\n"
                                    "[sysctl]\n# reason: a\nnet.a = 1\n# reason: b\nnet.b = 1\n")
    write_profile(tmp_path, "mid", "[main]\ninclude = base\n[guestcheck]\nrequires_guaranteed_memory=yes\n"
                                   "[sysctl]\n# reason: b2\nnet.b = 2\nnet.c = 2\n")
    write_profile(tmp_path, "top", "[main]\nsummary=top\ninclude = mid\n[guestcheck]\nmin_ram_mb=256\n"
                                   "[sysctl]\nnet.c = 3\n")
    p = load("top", [str(tmp_path)])
    assert {k: s.value for k, s in p.settings.items()} == {"net.a": "1", "net.b": "2", "net.c": "3"}
    assert p.settings["net.b"].reason == "b2"
    assert p.guards == Guards(min_ram_mb=512, requires_guaranteed_memory=True)  # stricter of each
    assert p.summary == "top" and p.includes == ["mid"]


def test_include_cycle_is_detected(tmp_path):
    write_profile(tmp_path, "a", "[main]\ninclude = b\n")
    write_profile(tmp_path, "b", "[main]\ninclude = c\n")
    write_profile(tmp_path, "c", "[main]\ninclude = a\n")
    with pytest.raises(ProfileError, match=r"include cycle: a -> b -> c -> a"):
        load("a", [str(tmp_path)])


def test_self_include_and_missing_include(tmp_path):
    write_profile(tmp_path, "me", "[main]\ninclude = me\n")
    write_profile(tmp_path, "lost", "[main]\ninclude = nowhere\n")
    with pytest.raises(ProfileError, match="include cycle: me -> me"):
        load("me", [str(tmp_path)])
    with pytest.raises(ProfileError, match=r"no profile named 'nowhere'.*available: lost, me"):
        load("lost", [str(tmp_path)])


def test_first_directory_shadows_later_ones(tmp_path):
    write_profile(tmp_path / "etc", "throughput", "[main]\nsummary = admin's own\n")
    write_profile(tmp_path / "share", "throughput", "[main]\nsummary = shipped\n")
    write_profile(tmp_path / "share", "other", "[main]\nsummary = other\n")
    dirs = [str(tmp_path / "etc"), str(tmp_path / "share")]
    assert load("throughput", dirs).summary == "admin's own"
    assert sorted(available(dirs)) == ["other", "throughput"]


def test_profile_dirs_env_override_and_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("GUESTCHECK_PROFILES", raising=False)
    shipped = profile_dirs("/etc")[1:]
    monkeypatch.setenv("GUESTCHECK_PROFILES", f"{tmp_path}/a:{tmp_path}/b")
    assert profile_dirs() == [f"{tmp_path}/a", f"{tmp_path}/b", *shipped]  # the shipped ones stay, last
    assert profile_dirs(override="/x") == ["/x", *shipped]
    assert profile_dirs(override=shipped[1]) == shipped[1:2] + shipped[:1] + shipped[2:]  # each directory once
    monkeypatch.delenv("GUESTCHECK_PROFILES")
    dirs = profile_dirs("/etc")
    assert dirs[0] == "/etc/guestcheck/profiles" and dirs[2] == "/usr/share/guestcheck/profiles"
    assert dirs[1].endswith("/profiles")  # the source checkout
    assert dirs[-1].endswith("/guestcheck/profiles") and len(dirs) == 4  # the package's own copy, last


def test_unreadable_and_binary_profiles(tmp_path):
    (tmp_path / "bin.conf").write_bytes(b"\xff\xfe[main]\n")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load("bin", [str(tmp_path)])
    with pytest.raises(ProfileError, match="bad profile name"):
        load("../x", [str(tmp_path)])


LINES = st.sampled_from([
    "[main]", "[sysctl]", "[guestcheck]", "[", "[x]", "summary = s", "include = a, b", "include = ,",
    "net.ipv4.tcp_rmem = >4096 87380 16777216", "net.a = >x", "net.a=", "=", "= 1", "# reason: r", ";c",
    "min_ram_mb = 12", "min_ram_mb = -1", "requires_guaranteed_memory = yes", "a b c", "net.b = 1\x00",
    "", "   ", "\t[sysctl]  ", "net/ipv4/x = 1",
])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(LINES, st.text(max_size=40)), max_size=25))
def test_malformed_input_never_tracebacks(lines):
    text = "\n".join(lines)
    try:
        p = parse_text(text, "fuzz", "/f/fuzz.conf")
    except ProfileError as e:
        assert str(e).startswith("/f/fuzz.conf:")
        return
    for s in p.settings.values():
        assert s.value == " ".join(s.value.split()) and s.value


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200), st.sampled_from(["a", "b"]))
def test_random_bytes_in_include_chains_never_traceback(tmp_path, data, first):
    (tmp_path / "a.conf").write_bytes(b"[main]\ninclude = b\n" + data)
    (tmp_path / "b.conf").write_bytes(data)
    try:
        load(first, [str(tmp_path)])
    except ProfileError as e:
        assert str(e)


# --- includes: each file read once, depth and size capped ---------------------------------------------

@pytest.fixture
def reads(monkeypatch):
    """Every profile file read, in order."""
    seen: list[str] = []
    real = profile_module._read

    def counting(path):
        seen.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(profile_module, "_read", counting)
    return seen


def write_diamond(directory, levels):
    """d0a/d0b include both d1a and d1b, which include both d2a and d2b...: 2**levels paths to the bottom."""
    for level in range(levels):
        for side in "ab":
            below = f"include = d{level + 1}a, d{level + 1}b\n" if level < levels - 1 else ""
            write_profile(directory, f"d{level}{side}",
                          f"[main]\n{below}[sysctl]\nnet.k{level}{side} = {level}\n")


def test_a_diamond_is_expanded_once_per_file(tmp_path, reads):
    levels = MAX_INCLUDE_DEPTH
    write_diamond(tmp_path, levels)
    started = time.monotonic()
    p = load("d0a", [str(tmp_path)])
    assert time.monotonic() - started < 2  # 2**16 paths to the bottom; one visit per file
    assert len(p.settings) == 2 * levels - 1  # every file's key, d0b's excepted (not included by d0a)
    assert sorted(reads) == sorted([f"d{lv}{s}.conf" for lv in range(1, levels) for s in "ab"] + ["d0a.conf"])


def test_a_forty_level_diamond_fails_fast_naming_the_chain(tmp_path, reads):
    write_diamond(tmp_path, 40)
    started = time.monotonic()
    with pytest.raises(ProfileError) as e:
        load("d0a", [str(tmp_path)])
    assert time.monotonic() - started < 2
    assert f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels: d0a -> d1a -> d2a -> ... (12 more) -> " \
           "d15a -> d16a" in str(e.value)
    assert "\n" not in str(e.value) and len(reads) == MAX_INCLUDE_DEPTH + 1


def test_a_1500_deep_chain_is_an_error_not_a_recursion_error(tmp_path, reads):
    for i in range(1500):
        write_profile(tmp_path, f"c{i}", f"[main]\ninclude = c{i + 1}\n" if i < 1499 else "[sysctl]\nnet.a = 1\n")
    loader = Loader([str(tmp_path)])
    with pytest.raises(ProfileError, match=r"c0 -> c1 -> c2 -> \.\.\. \(12 more\) -> c15 -> c16$"):
        loader.load("c0")
    deepest_allowed = 1500 - MAX_INCLUDE_DEPTH
    assert loader.load(f"c{deepest_allowed}").settings["net.a"].value == "1"  # exactly 16 profiles: allowed
    with pytest.raises(ProfileError, match=f"c{deepest_allowed - 1}.conf: includes nested deeper than 16 levels: "
                                           f"c{deepest_allowed - 1} -> .* -> c1499$"):
        loader.load(f"c{deepest_allowed - 1}")  # its includes were expanded (and memoised) before it
    assert len(reads) == len(set(reads))  # the same loader never reads a file twice


def test_an_include_cycle_through_memoised_profiles(tmp_path):
    write_profile(tmp_path, "top", "[main]\ninclude = ok, a\n")
    write_profile(tmp_path, "ok", "[sysctl]\nnet.a = 1\n")
    write_profile(tmp_path, "a", "[main]\ninclude = ok, b\n")
    write_profile(tmp_path, "b", "[main]\ninclude = a\n")
    with pytest.raises(ProfileError, match=r"include cycle: top -> a -> b -> a$"):
        load("top", [str(tmp_path)])


def test_too_many_included_profiles(tmp_path):
    names = [f"p{i}" for i in range(MAX_INCLUDED_FILES)]
    for n in names:
        write_profile(tmp_path, n, f"[sysctl]\nnet.{n} = 1\n")
    write_profile(tmp_path, "many", f"[main]\ninclude = {', '.join(names)}\n")
    with pytest.raises(ProfileError, match=f"many.conf: includes more than {MAX_INCLUDED_FILES} profiles$"):
        load("many", [str(tmp_path)])
    write_profile(tmp_path, "fewer", f"[main]\ninclude = {', '.join(names[1:])}\n")
    assert len(load("fewer", [str(tmp_path)]).settings) == MAX_INCLUDED_FILES - 1


def test_too_big_a_file_or_closure_or_too_many_keys(tmp_path):
    line = "# " + "x" * 1000 + "\n"
    write_profile(tmp_path, "huge", "[main]\n" + line * (MAX_FILE_BYTES // len(line) + 1))
    with pytest.raises(ProfileError, match=f"huge.conf: larger than {MAX_FILE_BYTES // 1024} KiB"):
        load("huge", [str(tmp_path)])
    parts = [f"part{i}" for i in range(MAX_TOTAL_BYTES // (MAX_FILE_BYTES - 2048) + 1)]
    for n in parts:
        write_profile(tmp_path, n, "[main]\n" + line * ((MAX_FILE_BYTES - 2048) // len(line)))
    write_profile(tmp_path, "bulky", f"[main]\ninclude = {', '.join(parts)}\n")
    with pytest.raises(ProfileError, match=f"bulky.conf: with its includes larger than {MAX_TOTAL_BYTES // 1024} KiB"):
        load("bulky", [str(tmp_path)])
    half = MAX_KEYS // 2 + 1
    write_profile(tmp_path, "k1", "[sysctl]\n" + "".join(f"net.a{i} = 1\n" for i in range(half)))
    write_profile(tmp_path, "k2", "[main]\ninclude = k1\n[sysctl]\n" + "".join(f"net.b{i} = 1\n" for i in range(half)))
    with pytest.raises(ProfileError, match=f"k2.conf: with its includes sets more than {MAX_KEYS} keys"):
        load("k2", [str(tmp_path)])
    assert len(load("k1", [str(tmp_path)]).settings) == half


def test_only_regular_files_are_read(tmp_path):
    os.mkfifo(tmp_path / "fifo.conf")  # would block open() forever
    (tmp_path / "zero.conf").symlink_to("/dev/zero")  # would never end
    (tmp_path / "real.conf").write_text("[main]\nsummary = linked\n")
    (tmp_path / "link.conf").symlink_to(tmp_path / "real.conf")  # an admin's symlink to a real file is fine
    for name in ("fifo", "zero"):
        with pytest.raises(ProfileError, match=f"{name}.conf: not a regular file"):
            load(name, [str(tmp_path)])
    assert load("link", [str(tmp_path)]).summary == "linked"


@pytest.mark.parametrize("name", ["../x", "/etc/x.conf", "x/y", ".hidden", "a\nb", "a\n", "é", "x" * 65, ""])
def test_profile_names_are_names_not_paths(tmp_path, name):
    (tmp_path / "x.conf").write_text("[main]\n")
    with pytest.raises(ProfileError, match="bad profile name"):
        load(name, [str(tmp_path)])


@pytest.mark.parametrize("name", ["../x", "/etc/x.conf", "x/y", ".hidden", "a b", "é", "x" * 65, "a\x1bb"])
def test_include_takes_names_not_paths(name):
    with pytest.raises(ProfileError, match="bad profile name"):
        parse_text(f"[main]\ninclude = ok, {name}\n", "p", "/p.conf")


def test_a_file_name_with_a_newline_is_not_a_profile(tmp_path):
    (tmp_path / "evil\n.conf").write_text("[sysctl]\nnet.a = 1\n")
    (tmp_path / ".hidden.conf").write_text("[sysctl]\nnet.a = 1\n")
    (tmp_path / "fine.conf").write_text("[sysctl]\nnet.a = 1\n")
    assert list(available([str(tmp_path)])) == ["fine"]


def test_control_characters_are_escaped_or_refused(tmp_path):
    p = parse_text("[main]\nsummary = red\x1b[31m \x9b2J \u202egnp.exe\n[sysctl]\n# reason: bell\x07\n"
                   "net.a = 1\n", "p", "/p.conf")
    assert p.summary == "red\\x1b[31m \\x9b2J \\u202egnp.exe"
    assert p.settings["net.a"].reason == "bell\\x07"
    for value in ("1\x7f", "1\x9b", "1\u202e"):
        with pytest.raises(ProfileError, match="control character"):
            parse_text(f"[sysctl]\nnet.a = {value}\n", "p", "/p.conf")


@pytest.mark.parametrize("line,words", [
    ("[guestcheck]\nmin_ram_mb = \u00b2", "whole number of MiB"),  # isdigit() says yes, int() says no
    ("[guestcheck]\nmin_ram_mb = " + "9" * 5000, "whole number of MiB"),  # past int()'s digit limit
    ("[guestcheck]\nmin_ram_mb = 99999999999", "whole number of MiB"),
    ("[sysctl]\nnet.a = >" + "9" * 30, "64-bit at most"),
    ("[sysctl]\nnet.a = >1 " + "9" * 5000, "64-bit at most"),
    ("[sysctl]\nnet.a = >18446744073709551616", "64-bit at most"),
])
def test_huge_numbers_are_refused(line, words):
    with pytest.raises(ProfileError, match=words) as e:
        parse_text(line + "\n", "p", "/p.conf")
    assert len(str(e.value)) < 300


def test_repeated_includes_count_once(tmp_path):
    write_profile(tmp_path, "base", "[sysctl]\nnet.a = 1\n")
    write_profile(tmp_path, "top", "[main]\ninclude = " + ", ".join(["base"] * 5000) + "\n")
    assert load("top", [str(tmp_path)]).includes == ["base"]


# --- the CLI with one broken profile among good ones --------------------------------------------------

def _tune(root, profiles, *args):
    return subprocess.run([sys.executable, "-m", "guestcheck", "tune", "--profiles", str(profiles), *args],
                          capture_output=True, text=True, timeout=60, cwd=str(REPO),
                          env={**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(root)})


def test_list_show_and_recommend_with_a_broken_profile(tmp_path):
    FakeKernel(tmp_path / "root")
    d = tmp_path / "profiles"
    write_profile(d, "latency", "[main]\nsummary = low latency\n[sysctl]\nnet.ipv4.tcp_sack = 1\n")
    write_profile(d, "other", "[main]\nsummary = fine \x1b]0;owned\x07\n")
    for i in range(1500):  # the chain that used to raise RecursionError and break `list` for everyone
        write_profile(d, f"throughput{'-' + str(i) if i else ''}",
                      f"[main]\ninclude = throughput-{i + 1}\n" if i < 1499 else "[main]\n")
    out = _tune(tmp_path / "root", d, "list")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    assert "latency            low latency" in lines
    assert "other              fine \\x1b]0;owned\\x07" in lines
    broken = [ln for ln in lines if ln.startswith("throughput ")]
    assert broken == [f"throughput         (broken: {d}/throughput.conf: includes nested deeper than 16 levels: "
                      "throughput -> throughput-1 -> throughput-2 -> ... (12 more) -> throughput-15 -> throughput-16)"]
    assert "throughput-1499    " in out.stdout
    out = _tune(tmp_path / "root", d, "show", "throughput")
    assert out.returncode == 3 and out.stderr.count("\n") == 1 and "nested deeper than 16" in out.stderr
    assert _tune(tmp_path / "root", d, "show", "latency").stdout.startswith("latency: low latency\n")
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"schema": "guestcheck.facts/1"}))
    out = _tune(tmp_path / "root", d, "recommend", "--facts", str(facts))
    assert out.returncode == 0 and out.stdout.startswith("recommended: latency\n")
    assert "found: the throughput profile is unusable: " in out.stdout
    (d / "latency.conf").write_text("[sysctl]\nnet.a = >lots\n")
    out = _tune(tmp_path / "root", d, "recommend", "--facts", str(facts))
    assert out.returncode == 3 and out.stderr.startswith("Error: no usable profile to recommend: ")
    assert out.stderr.count("\n") == 1
