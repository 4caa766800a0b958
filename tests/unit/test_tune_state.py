"""The journal (guestcheck/tune/state.py) and its lock: every value checked, a damaged one is one line."""

from __future__ import annotations

import fcntl
import json
import os

import pytest

from guestcheck.tune import TuneError
from guestcheck.tune import apply as tune_apply
from guestcheck.tune.apply import apply_profile, rollback
from guestcheck.tune.profile import parse_text
from guestcheck.tune.state import (
    STATE_SCHEMA,
    SizingRecord,
    State,
    SysctlBackup,
    load_state,
    lock_path,
    state_from_text,
)
from tests.tune_fake import FakeKernel

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

    monkeypatch.setattr(tune_apply, "write_atomic", full_disk)
    monkeypatch.setattr(tune_apply, "save_state", lambda roots, state: None)
    with pytest.raises(TuneError, match=r"No space left on device; undid 3 change\(s\)"):
        apply_profile(PROFILE, k.roots)
    assert k.snapshot() == before
