"""The journal (guestcheck/tune/journal.py) and its lock: every value checked, a damaged one is one line."""

from __future__ import annotations

import base64
import fcntl
import json
import os
from pathlib import Path

import pytest

from guestcheck.tune import TuneError
from guestcheck.tune import journal as state_module
from guestcheck.tune.engine import rollback
from guestcheck.tune.journal import (
    OLD_SCHEMA,
    STATE_SCHEMA,
    JournalTooLarge,
    LinkRecord,
    NicIdentity,
    SizingRecord,
    State,
    SysctlBackup,
    check_fits,
    load_state,
    lock_path,
    state_from_text,
)
from guestcheck.tune.persist import encode
from guestcheck.tune.profile import parse_text
from tests.tune_fake import STOCK, FakeKernel, apply_profile

PROFILE = parse_text("[sysctl]\nnet.ipv4.tcp_fin_timeout = 15\nnet.ipv4.tcp_tw_reuse = 1\n"
                     "net.ipv4.tcp_mtu_probing = 1\n", "p", "p.conf")


def journal(**fields):
    return json.dumps({"schema": STATE_SCHEMA, "complete": True, **fields})


GOOD_SYSCTL = {"net.ipv4.tcp_fin_timeout": {"original": "60", "applied": "15"}}


@pytest.mark.parametrize("text,words", [
    (journal(sysctl={"net.//.//.//.tmp.victim": {"original": "x", "applied": "y"}}), "not a sysctl name"),
    (journal(sysctl={"net.ipv4.tcp_fin_timeout": {"original": None, "applied": "15"}}), "not a sysctl value"),
    (journal(sysctl={"net.ipv4.tcp_fin_timeout": {"original": 60, "applied": "15"}}), "not a sysctl value"),
    (journal(sysctl={"net.ipv4.tcp_fin_timeout": {"original": "60\nvm.x = 1", "applied": "15"}}), "sysctl value"),
    (journal(sysctl={"net.ipv4.tcp_fin_timeout": ["60", "15"]}), "not an object"),
    (journal(sysctl=[1, 2]), "sysctl: not an object"),
    (journal(channels={"eth0": {"combined": -1}}), "not a channel count"),
    (journal(channels={"eth0": {"combined": 10**9}}), "not a channel count"),
    (journal(channels={"eth0": {"combined": True}}), "not a channel count"),
    (journal(channels={"eth0": {"bogus": 1}}), "not a channel kind"),
    (journal(channels={"../../x": {"rx": 1}}), "not an interface name"),
    (journal(features={"eth0": {"tx-tcp-segmentation": "false"}}), "is not true or false"),
    (journal(features={"eth0": {"a b": True}}), "not an offload feature name"),
    (journal(complete="no"), "is not true or false"),
    (journal(persist_mode=0o4755), "not a file mode"),
    (journal(persist_original=7), "not the content of a file"),
    (journal(boot_id="../x"), "not a boot id"),
    ('{"schema": "' + STATE_SCHEMA + '", "channels": {"eth0": {"rx": ' + "9" * 5000 + "}}}", "out of range"),
    ('{"schema": "' + STATE_SCHEMA + '", "channels": {"eth0": {"rx": NaN}}}', "NaN is not a value"),
    ('{"schema": "' + STATE_SCHEMA + '", "channels": {"eth0": {"rx": Infinity}}}', "Infinity is not a value"),
    ('{"schema": "' + STATE_SCHEMA + '", "channels": {"eth0": {"rx": 1e400}}}', "not a whole number"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ("[]", "not a guestcheck.tune-state/2 document"),
    (journal(applying=7), "applying 7: not a profile name"),
    (journal(sizing={"ceiling_bytes": 0, "summary": "x"}), "not a buffer size"),
    (journal(sizing={"ceiling_bytes": 2**31, "summary": "x"}), "not a buffer size"),
    (journal(sizing={"ceiling_bytes": True, "summary": "x"}), "not a buffer size"),
    (journal(sizing={"ceiling_bytes": 4096, "summary": "a\nb"}), "not a sysctl value"),
    (journal(sizing={"ceiling_bytes": 4096}), "expected ceiling_bytes and summary"),
    (journal(sizing=[4096]), "sizing"),
])
def test_damaged_journals_are_one_line_errors(text, words):
    with pytest.raises(TuneError) as e:
        state_from_text(text, "J")
    assert words in str(e.value) and str(e.value).startswith("J is damaged") and "\n" not in str(e.value)


def test_a_good_journal_round_trips_every_field():
    state = State("p", True, {"net.ipv4.tcp_fin_timeout": SysctlBackup("60", "15")}, "a\udce9b\n", True, 0o600,
                  {"eth0": {"tx-tcp-segmentation": False}}, {"eth0": {"combined": 1}}, "0f1e-aa")
    assert state_from_text(state.to_text(), "J") == state
    state.applying, state.complete, state.sizing = "wan", False, SizingRecord(30003200, "sized to 400 Mbit/s")
    assert state_from_text(state.to_text(), "J") == state


def test_a_journal_that_is_not_utf8_or_not_a_file_is_one_line(tmp_path):
    k = FakeKernel(tmp_path)
    k.state.parent.mkdir(parents=True)
    k.state.write_bytes(b'{"schema": "\xff"}')
    with pytest.raises(TuneError, match="is damaged: not UTF-8"):
        load_state(k.roots)
    k.state.unlink()
    os.mkfifo(k.state)
    with pytest.raises(TuneError, match="is damaged: not a regular file"):
        load_state(k.roots)


@pytest.mark.parametrize("make", ["fifo", "symlink"])
def test_a_lock_that_is_not_a_regular_file_is_refused_without_waiting(tmp_path, make):
    k = FakeKernel(tmp_path)
    path = lock_path(k.roots)
    os.makedirs(os.path.dirname(path))
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.mkfifo(path) if make == "fifo" else os.symlink(victim, path)
    with pytest.raises(TuneError, match="is not a regular file"):
        apply_profile(PROFILE, k.roots)
    assert victim.read_text() == "keep" and k.get("net.ipv4.tcp_fin_timeout") == "60"


def test_the_lock_is_taken_before_the_journal_is_read(tmp_path):
    k = FakeKernel(tmp_path)
    apply_profile(PROFILE, k.roots)
    k.state.write_text("damaged")
    fd = os.open(lock_path(k.roots), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for run in (lambda: apply_profile(PROFILE, k.roots), lambda: rollback(k.roots)):
            with pytest.raises(TuneError, match="another `guestcheck tune` is running"):
                run()
    finally:
        os.close(fd)


def test_undid_counts_the_writes_undone_when_the_persist_file_fails(tmp_path, monkeypatch):
    k = FakeKernel(tmp_path)
    before = k.snapshot()

    def full_disk(*_a, **_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("guestcheck.tune.persist.write_atomic", full_disk)
    monkeypatch.setattr("guestcheck.tune.engine.save_state", lambda roots, state: None)
    with pytest.raises(TuneError, match=r"No space left on device; undid 3 change\(s\)"):
        apply_profile(PROFILE, k.roots)
    assert k.snapshot() == before


# --- format /2 (issue 18 item 2): kept files as base64 of their bytes, a size checked before any change ------

def test_kept_files_are_base64_of_their_bytes_and_round_trip_exactly():
    raw = bytes(range(256)) * 3
    content = raw.decode("utf-8", "surrogateescape")
    state = State(persist_original=content, persist_recorded=True,
                  links={"eth0": LinkRecord("50-guestcheck-eth0.link", ["OriginalName=eth0"], original=content,
                                            rule_original="", rule_recorded=True)},
                  nics={"eth0": NicIdentity(mac="52:54:00:12:34:56", ifindex=2, boot_id="0f1e-aa")})
    data = json.loads(state.to_text())
    assert data["schema"] == "guestcheck.tune-state/2"
    assert base64.b64decode(data["persist_original"]) == raw
    assert base64.b64decode(data["links"]["eth0"]["original"]) == raw
    assert state_from_text(state.to_text(), "J") == state


def test_the_journal_size_is_predictable_for_bytes_that_are_not_utf8():
    """1 MiB of bytes that are not UTF-8: 4/3 of it in base64, where /1 wrote six characters a byte (and grew
    past what rollback reads)."""
    raw = bytes(range(128, 256)) * 8192
    state = State(persist_original=raw.decode("utf-8", "surrogateescape"), persist_recorded=True)
    size = len(state.to_text())
    assert size < len(raw) * 4 // 3 + 1024
    check_fits(state)
    state.links["eth0"] = LinkRecord("50-guestcheck-eth0.link", ["OriginalName=eth0"], original=state.persist_original,
                                     rule_original=state.persist_original, rule_recorded=True)
    with pytest.raises(JournalTooLarge, match="that `rollback` reads"):
        check_fits(state)


def test_apply_refuses_a_journal_rollback_could_not_read_before_anything_changes(tmp_path, monkeypatch):
    k = FakeKernel(tmp_path)
    k.persist.parent.mkdir(parents=True)
    k.persist.write_bytes(b"# \xe9" * 1000)
    monkeypatch.setattr(state_module, "MAX_JOURNAL_BYTES", 3000)  # the 3 KB file's base64 leaves no room
    before = k.snapshot()
    with pytest.raises(JournalTooLarge, match="nothing was changed"):
        apply_profile(PROFILE, k.roots, procsys=k.procsys)
    assert k.snapshot() == before and k.persist.read_bytes() == b"# \xe9" * 1000
    assert not k.state.exists() and not os.path.exists(lock_path(k.roots))  # not even the lock file
    result = apply_profile(PROFILE, k.roots, procsys=k.procsys, dry_run=True)
    assert any("apply would refuse: the journal would be" in n for n in result.notes)


@pytest.mark.parametrize("nics, words", [
    ({"eth0": {"perm_mac": "x"}}, "not a hardware address"),
    ({"eth0": {"mac": "52:54:00:12:34:56\n"}}, "not a hardware address"),
    ({"eth0": {"ifindex": 0}}, "not an interface index"),
    ({"eth0": {"ifindex": True}}, "not an interface index"),
    ({"eth0": {"boot_id": "../x"}}, "not a boot id"),
    ({"eth0": {"name": "x"}}, "not part of a device's identity"),
    ({"a/b": {}}, "not an interface name"),
])
def test_damaged_nic_identities_are_one_line_errors(nics, words):
    with pytest.raises(TuneError, match=words):
        state_from_text(json.dumps({"schema": STATE_SCHEMA, "nics": nics}), "J")


def test_damaged_base64_is_refused_and_a_1ab7483_journal_keeps_its_text():
    with pytest.raises(TuneError, match="persist_original: not base64"):
        state_from_text(json.dumps({"schema": STATE_SCHEMA, "persist_original": "a\udce9b"}), "J")
    old = state_from_text(json.dumps({"schema": OLD_SCHEMA, "persist_original": "a\udce9b"}), "J")
    assert old.persist_original == "a\udce9b" and old.nics == {}


def test_journals_written_by_1ab7483_still_load_and_roll_back_byte_for_byte(tmp_path):
    """tests/data/journal-1ab7483-*.json (see tests/data/README.md); on a real kernel too in
    tests/live/test_tune_journal_live.py."""
    data = Path(__file__).resolve().parents[1] / "data"
    nic = load_text(data / "journal-1ab7483-nic.json")
    assert nic.nics == {} and nic.links["gc0"].match == ["MACAddress=ea:3e:b3:46:d0:17"]
    assert encode(nic.links["gc0"].original) == (data / "journal-1ab7483-nic.orig-50-guestcheck-gc0.link").read_bytes()
    assert encode(nic.links["gc0"].rule_original) == (data / "journal-1ab7483-nic.orig-90-guestcheck-gc0.rules"
                                                      ).read_bytes()
    assert load_text(data / "journal-1ab7483-nic.json", again=True) == nic  # rewritten as /2: the same
    old = load_text(data / "journal-1ab7483-apply.json")
    k = FakeKernel(tmp_path, {**STOCK, **{key: b.applied for key, b in old.sysctl.items()}})
    k.persist.parent.mkdir(parents=True)
    k.persist.write_bytes((data / "journal-1ab7483-apply.applied-90-guestcheck.conf").read_bytes())
    k.state.parent.mkdir(parents=True)
    k.state.write_bytes((data / "journal-1ab7483-apply.json").read_bytes())
    rollback(k.roots, procsys=k.procsys)
    assert k.persist.read_bytes() == (data / "journal-1ab7483-apply.orig-90-guestcheck.conf").read_bytes()
    assert os.stat(k.persist).st_mode & 0o777 == 0o640 and not k.state.exists()
    assert all(k.get(key) == b.original for key, b in old.sysctl.items())


def load_text(path, again=False):
    state = state_from_text(path.read_text(), str(path))
    return state_from_text(state.to_text(), "rewritten") if again else state
