"""apply / rollback on a fake kernel: journal first, exact restore, idempotence, undo on failure."""

from __future__ import annotations

import json
import os

import pytest

from guestcheck.tune import TuneError
from guestcheck.tune.engine import rollback
from guestcheck.tune.journal import load_state
from guestcheck.tune.live import ProcSys
from guestcheck.tune.profile import load, parse_text
from guestcheck.tune.units import sysctl as tune_apply
from tests.tune_fake import PROFILES, FakeKernel, apply_profile

DIRS = [str(PROFILES)]
MANY = parse_text("[main]\nsummary = many keys\n[sysctl]\n" + "".join(
    f"# reason: r{i}\n{k} = {v}\n" for i, (k, v) in enumerate([
        ("net.ipv4.tcp_fin_timeout", "15"), ("net.ipv4.tcp_tw_reuse", "1"), ("net.ipv4.tcp_mtu_probing", "1"),
        ("net.ipv4.tcp_slow_start_after_idle", "0"), ("net.core.somaxconn", "8192")])), "many", "many.conf")


def test_apply_writes_live_values_persist_file_and_journal(tmp_path):
    k = FakeKernel(tmp_path)
    result = apply_profile(load("throughput", DIRS), k.roots)
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 16777216"
    assert k.get("net.core.wmem_max") == "16777216"
    assert k.get("net.ipv4.tcp_slow_start_after_idle") == "0"
    assert [c.key for c in result.written] == ["net.core.rmem_max", "net.core.wmem_max", "net.ipv4.tcp_rmem",
                                               "net.ipv4.tcp_wmem", "net.core.netdev_max_backlog",
                                               "net.ipv4.tcp_slow_start_after_idle"]
    text = k.persist.read_text()
    assert "net.ipv4.tcp_rmem = 4096 131072 16777216\n" in text
    assert "# reason: receive autotuning" in text and "tcp_window_scaling" not in text  # unchanged keys stay out
    journal = json.loads(k.state.read_text())
    assert journal["complete"] is True and journal["profile"] == "throughput"
    assert journal["sysctl"]["net.ipv4.tcp_rmem"] == {"original": "4096 131072 6291456",
                                                      "applied": "4096 131072 16777216"}
    assert oct(os.stat(k.state).st_mode & 0o777) == "0o600"
    assert not [p for p in os.listdir(k.persist.parent) if p.startswith(".")]  # no temp files left


def test_rollback_restores_exactly_and_removes_the_files(tmp_path):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    apply_profile(load("throughput", DIRS), k.roots)
    assert k.snapshot() != before
    result = rollback(k.roots)
    assert "net.ipv4.tcp_rmem: 4096 131072 16777216 -> 4096 131072 6291456" in result.actions
    assert k.snapshot() == before
    assert not k.persist.exists() and not k.state.exists()
    assert rollback(k.roots).nothing_to_do


def test_apply_twice_changes_nothing(tmp_path):
    k = FakeKernel(tmp_path)
    apply_profile(load("throughput", DIRS), k.roots)
    stamps = (k.persist.stat().st_mtime_ns, k.state.stat().st_mtime_ns, k.persist.stat().st_ino)
    second = apply_profile(load("throughput", DIRS), k.roots)
    assert second.nothing_to_do and not second.written
    assert (k.persist.stat().st_mtime_ns, k.state.stat().st_mtime_ns, k.persist.stat().st_ino) == stamps


def test_a_then_b_then_rollback_returns_to_the_original(tmp_path):
    k = FakeKernel(tmp_path)
    original = k.snapshot()
    apply_profile(load("throughput", DIRS), k.roots)
    b = apply_profile(load("many-connections", DIRS), k.roots)
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 6291456"  # A's key not in B: back to the original
    assert k.get("net.ipv4.tcp_fin_timeout") == "15"
    assert {c.key for c in b.plan.changes if c.action == "restore"} >= {"net.ipv4.tcp_rmem", "net.core.rmem_max"}
    state = load_state(k.roots)
    assert state.profile == "many-connections" and "net.ipv4.tcp_rmem" not in state.sysctl
    assert "tcp_fin_timeout = 15" in k.persist.read_text() and "tcp_rmem" not in k.persist.read_text()
    rollback(k.roots)
    assert k.snapshot() == original and not k.persist.exists()


def test_b_sharing_a_key_with_a_keeps_the_first_backup(tmp_path):
    k = FakeKernel(tmp_path)
    a = parse_text("[sysctl]\nnet.ipv4.tcp_fin_timeout = 30\n", "a", "a.conf")
    b = parse_text("[sysctl]\nnet.ipv4.tcp_fin_timeout = 15\n", "b", "b.conf")
    apply_profile(a, k.roots)
    apply_profile(b, k.roots)
    assert load_state(k.roots).sysctl["net.ipv4.tcp_fin_timeout"].original == "60"
    rollback(k.roots)
    assert k.get("net.ipv4.tcp_fin_timeout") == "60"


def test_an_admins_own_file_with_our_name_is_restored(tmp_path):
    k = FakeKernel(tmp_path)
    k.persist.parent.mkdir(parents=True)
    k.persist.write_text("# hand-written\nnet.ipv4.tcp_sack = 1\n")
    apply_profile(load("throughput", DIRS), k.roots)
    assert "guestcheck tune apply throughput" in k.persist.read_text()
    rollback(k.roots)
    assert k.persist.read_text() == "# hand-written\nnet.ipv4.tcp_sack = 1\n"


REAL_WRITE = tune_apply.write_sysctl


def break_write(monkeypatch, key: str, error: BaseException) -> None:
    """Make writing `key` raise `error`; every other key is written for real."""
    def write(procsys, k, value):
        if k == key:
            raise error
        REAL_WRITE(procsys, k, value)

    monkeypatch.setattr(tune_apply, "write_sysctl", write)


def test_failure_midway_undoes_what_was_written(tmp_path, monkeypatch):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    break_write(monkeypatch, "net.ipv4.tcp_mtu_probing", TuneError("the kernel refused it (Invalid argument)"))
    with pytest.raises(TuneError, match=r"refused it \(Invalid argument\); undid 2 change\(s\) before it: the system"):
        apply_profile(MANY, k.roots)
    assert k.snapshot() == before
    assert not k.state.exists() and not k.persist.exists()


def test_failure_midway_over_an_applied_profile_returns_to_that_profile(tmp_path, monkeypatch):
    k = FakeKernel(tmp_path)
    apply_profile(load("throughput", DIRS), k.roots)
    applied, journal, persisted = k.snapshot(), k.state.read_text(), k.persist.read_text()
    break_write(monkeypatch, "net.ipv4.tcp_mtu_probing", TuneError("the kernel refused it"))
    with pytest.raises(TuneError, match="undid"):
        apply_profile(MANY, k.roots)
    assert (k.snapshot(), k.state.read_text(), k.persist.read_text()) == (applied, journal, persisted)


def test_a_crash_midway_leaves_a_journal_that_rollback_uses(tmp_path, monkeypatch):
    """A kill between writes: no undo runs, but the journal was written first."""
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    break_write(monkeypatch, "net.ipv4.tcp_mtu_probing", SystemExit("SIGKILL"))  # apply catches nothing of it
    with pytest.raises(SystemExit):
        apply_profile(MANY, k.roots)
    monkeypatch.setattr(tune_apply, "write_sysctl", REAL_WRITE)
    assert k.get("net.ipv4.tcp_fin_timeout") == "15" and not k.persist.exists()
    assert load_state(k.roots).complete is False
    rollback(k.roots)
    assert k.snapshot() == before and not k.state.exists()


def test_apply_after_a_crash_completes_and_still_rolls_back_to_the_original(tmp_path, monkeypatch):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    break_write(monkeypatch, "net.core.somaxconn", SystemExit())
    with pytest.raises(SystemExit):
        apply_profile(MANY, k.roots)
    monkeypatch.setattr(tune_apply, "write_sysctl", REAL_WRITE)
    apply_profile(MANY, k.roots)
    assert load_state(k.roots).complete is True and k.get("net.core.somaxconn") == "8192"
    rollback(k.roots)
    assert k.snapshot() == before


def test_read_only_proc_sys_is_an_error_before_anything_changes(tmp_path):
    class ReadOnlyMount(ProcSys):
        def mounted_read_only(self) -> bool:
            return True

    k = FakeKernel(tmp_path)
    before = k.snapshot()
    with pytest.raises(TuneError, match=r"proc/sys is mounted read-only \(a container\?\): nothing was changed"):
        apply_profile(load("throughput", DIRS), k.roots, procsys=ReadOnlyMount(k.roots))
    assert k.snapshot() == before and not k.state.exists() and not k.persist.exists()


def test_dry_run_changes_nothing(tmp_path):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    result = apply_profile(load("throughput", DIRS), k.roots, dry_run=True)
    assert len(result.written) == 6 and "tcp_rmem = 4096 131072 16777216" in result.persist_text
    assert k.snapshot() == before and not (tmp_path / "etc").exists() and not (tmp_path / "var").exists()
    apply_profile(load("throughput", DIRS), k.roots)
    rb = rollback(k.roots, dry_run=True)
    assert rb.actions and k.state.exists() and k.get("net.core.rmem_max") == "16777216"


def test_kernel_changing_a_value_behind_our_back_is_caught_on_read_back(tmp_path, monkeypatch):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    real_read = ProcSys.read
    monkeypatch.setattr(ProcSys, "read", lambda self, key: "7" if key == "net.ipv4.tcp_tw_reuse" and
                        k.state.exists() else real_read(self, key))
    with pytest.raises(TuneError, match=r"tcp_tw_reuse reads '7' after writing '1'"):
        apply_profile(MANY, k.roots)
    monkeypatch.setattr(ProcSys, "read", real_read)
    assert k.snapshot() == before


def test_keys_skipped_now_keep_their_backup(tmp_path):
    k = FakeKernel(tmp_path)
    apply_profile(MANY, k.roots)
    os.chmod(k.procsys.path("net.core.somaxconn"), 0o444)  # e.g. now run from somewhere it is read-only
    apply_profile(parse_text("[sysctl]\nnet.core.somaxconn = 9000\n", "x", "x.conf"), k.roots)
    assert load_state(k.roots).sysctl["net.core.somaxconn"].original == "4096"
    os.chmod(k.procsys.path("net.core.somaxconn"), 0o644)
    rollback(k.roots)
    assert k.get("net.core.somaxconn") == "4096"


def test_a_profile_the_kernel_already_has_writes_no_files(tmp_path):
    k = FakeKernel(tmp_path)
    result = apply_profile(parse_text("[sysctl]\nnet.ipv4.tcp_sack = 1\n", "s", "s.conf"), k.roots)
    assert result.nothing_to_do
    assert not (tmp_path / "etc").exists() and not (tmp_path / "var").exists()


def test_a_damaged_journal_is_a_clear_error(tmp_path):
    k = FakeKernel(tmp_path)
    k.state.parent.mkdir(parents=True)
    k.state.write_text("{not json")
    with pytest.raises(TuneError, match=r"tune-state\.json is damaged"):
        rollback(k.roots)
    k.state.write_text('{"schema": "guestcheck.tune-state/1", "sysctl": {"a": 1}}')
    with pytest.raises(TuneError, match="damaged"):
        apply_profile(MANY, k.roots)
