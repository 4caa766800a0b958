"""Profile parsing: TuneD syntax, includes, cycles, raise-only, errors with file and line."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guestcheck.tune.profile import Guards, ProfileError, available, load, normalise_key, parse_text, profile_dirs
from tests.tune_fake import write_profile

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
    monkeypatch.setenv("GUESTCHECK_PROFILES", f"{tmp_path}/a:{tmp_path}/b")
    assert profile_dirs() == [f"{tmp_path}/a", f"{tmp_path}/b"]
    assert profile_dirs(override="/x") == ["/x"]
    monkeypatch.delenv("GUESTCHECK_PROFILES")
    dirs = profile_dirs("/etc")
    assert dirs[0] == "/etc/guestcheck/profiles" and dirs[-1] == "/usr/share/guestcheck/profiles"
    assert dirs[1].endswith("/profiles")  # the source checkout


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
