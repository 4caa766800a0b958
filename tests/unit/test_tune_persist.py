"""The persist file (guestcheck/tune/persist.py and its use by apply/rollback/verify): any byte, any mode,
links and masks left to the admin, and no profile text that can add a line."""

from __future__ import annotations

import os
import stat

import pytest

from guestcheck.text import escape_control
from guestcheck.tune import TuneError
from guestcheck.tune.engine import rollback
from guestcheck.tune.journal import load_state
from guestcheck.tune.persist import MASKED, SYMLINK, inspect, render
from guestcheck.tune.profile import parse_text
from guestcheck.tune.verify import verify_applied
from tests.fuzz.harness import tree
from tests.tune_fake import FakeKernel, apply_profile

PROFILE = parse_text("[main]\nsummary = s\n[sysctl]\n# reason: r\nnet.ipv4.tcp_fin_timeout = 15\n", "p", "p.conf")
LATIN1 = b"# r\xe9glages de l'admin\nnet.ipv4.tcp_sack = 1\n"


def test_a_file_that_is_not_utf8_comes_back_byte_for_byte_with_its_mode(tmp_path):
    k = FakeKernel(tmp_path)
    k.persist.parent.mkdir(parents=True)
    k.persist.write_bytes(LATIN1)
    os.chmod(k.persist, 0o600)
    apply_profile(PROFILE, k.roots)
    assert k.get("net.ipv4.tcp_fin_timeout") == "15" and b"tcp_fin_timeout = 15" in k.persist.read_bytes()
    assert stat.S_IMODE(os.stat(k.persist).st_mode) == 0o644
    assert verify_applied(k.roots, load_state(k.roots)).ok
    result = rollback(k.roots)
    assert f"restore {k.persist}" in result.actions
    assert k.persist.read_bytes() == LATIN1 and stat.S_IMODE(os.stat(k.persist).st_mode) == 0o600
    assert k.get("net.ipv4.tcp_fin_timeout") == "60"


def test_bytes_added_after_apply_do_not_block_verify_or_rollback(tmp_path):
    k = FakeKernel(tmp_path)
    apply_profile(PROFILE, k.roots)
    k.persist.write_bytes(k.persist.read_bytes() + b"# \xff\xfe\n")
    v = verify_applied(k.roots, load_state(k.roots))
    assert not v.ok and any("not UTF-8" in p for p in v.problems)
    dry = rollback(k.roots, dry_run=True)
    assert f"remove {k.persist} (it held bytes that are not UTF-8)" in dry.actions
    rollback(k.roots)
    assert k.get("net.ipv4.tcp_fin_timeout") == "60" and not k.persist.exists() and load_state(k.roots) is None


@pytest.mark.parametrize("target,kind,words", [
    ("/dev/null", MASKED, "is masked (a symlink to /dev/null): the admin does not want it"),
    ("../admin.conf", SYMLINK, "is a symlink (to '../admin.conf'): guestcheck does not write through links"),
])
def test_apply_refuses_a_symlinked_or_masked_file_and_changes_nothing(tmp_path, target, kind, words):
    k = FakeKernel(tmp_path)
    k.persist.parent.mkdir(parents=True)
    (tmp_path / "etc/admin.conf").write_text("net.ipv4.tcp_sack = 1\n")
    os.symlink(target, k.persist)
    assert inspect(str(k.persist)).kind == kind
    before = tree(tmp_path)
    with pytest.raises(TuneError, match="nothing was changed") as e:
        apply_profile(PROFILE, k.roots)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert tree(tmp_path) == before  # not even the lock file
    assert "apply would refuse" in " ".join(apply_profile(PROFILE, k.roots, dry_run=True).notes)
    assert rollback(k.roots).nothing_to_do and tree(tmp_path) == before


def test_a_mask_made_after_apply_is_left_and_the_kernel_restored(tmp_path):
    k = FakeKernel(tmp_path)
    apply_profile(PROFILE, k.roots)
    k.persist.unlink()
    os.symlink("/dev/null", k.persist)
    assert not verify_applied(k.roots, load_state(k.roots)).ok
    result = rollback(k.roots)
    assert any("is now masked" in n and "left as it is" in n for n in result.notes)
    assert os.readlink(k.persist) == "/dev/null" and k.get("net.ipv4.tcp_fin_timeout") == "60"
    assert load_state(k.roots) is None


def test_a_fifo_in_its_place_never_blocks(tmp_path):
    k = FakeKernel(tmp_path)
    k.persist.parent.mkdir(parents=True)
    os.mkfifo(k.persist)
    with pytest.raises(TuneError, match="is not a regular file"):
        apply_profile(PROFILE, k.roots)


@pytest.mark.parametrize("name,summary,reason", [
    ("evil\nnet.core.rmem_max = 1", "s", "r"),
    ("p", "s\nkernel.core_pattern = |/bin/sh", "r"),
    ("p", "s", "r\rvm.swappiness = 1\u2028x\x85y"),
])
def test_no_profile_text_adds_a_line(name, summary, reason):
    text = render(name, summary, [("net.ipv4.tcp_fin_timeout", "15", reason)])
    assignments = [ln for ln in text.split("\n") if ln and not ln.startswith("#")]
    assert assignments == ["net.ipv4.tcp_fin_timeout = 15"]
    assert len(text.splitlines()) == len(text.split("\n")) - 1  # no other line breaks anywhere


@pytest.mark.parametrize("key,value", [("net.ipv4.tcp_fin_timeout", "15\nvm.swappiness = 1"),
                                       ("net.ipv4.conf.a=b.rp_filter", "1"), ("net.ipv4.x", "")])
def test_assignments_that_would_not_stay_one_line_are_refused(key, value):
    with pytest.raises(TuneError, match="refusing to persist"):
        render("p", "s", [(key, value, "")])


def test_a_profile_file_named_with_a_newline_writes_one_assignment(tmp_path):
    k = FakeKernel(tmp_path)
    profile = parse_text("[sysctl]\nnet.ipv4.tcp_fin_timeout = 15\n", "x\nnet.core.rmem_max = 1\n#", "x.conf")
    apply_profile(profile, k.roots)
    lines = [ln for ln in k.persist.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines == ["net.ipv4.tcp_fin_timeout = 15"]
    assert verify_applied(k.roots, load_state(k.roots)).subject == "x\\nnet.core.rmem_max = 1\\n#"
    rollback(k.roots)
    assert not k.persist.exists() and k.get("net.ipv4.tcp_fin_timeout") == "60"
    assert escape_control("a\nb") == "a\\nb"
