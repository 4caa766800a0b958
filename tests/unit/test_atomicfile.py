"""guestcheck/atomicfile.py: atomic replacement; user-named paths make no directories and keep their mode."""

from __future__ import annotations

import os
import stat

import pytest

from guestcheck.atomicfile import write_atomic


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_own_files_get_their_directories_and_mode(tmp_path):
    target = tmp_path / "var/lib/guestcheck/state.json"
    write_atomic(str(target), "x", mode=0o600)
    assert target.read_text() == "x" and mode(target) == 0o600
    target.chmod(0o640)
    write_atomic(str(target), "y", mode=0o600)
    assert mode(target) == 0o600  # the program's own file: its mode is the program's


def test_a_user_named_path_gets_no_new_directories(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        write_atomic(str(tmp_path / "typo/report.json"), "x", make_parents=False)
    assert e.value.strerror == f"directory {tmp_path / 'typo'} does not exist"
    assert not (tmp_path / "typo").exists()


def test_keep_mode_keeps_an_existing_file_mode_and_gives_a_new_one_0644(tmp_path):
    old = tmp_path / "report.json"
    old.write_text("old")
    old.chmod(0o600)
    write_atomic(str(old), "new", make_parents=False, keep_mode=True)
    assert old.read_text() == "new" and mode(old) == 0o600
    new = tmp_path / "fresh.json"
    os.umask(umask := os.umask(0o077))
    try:
        write_atomic(str(new), "x", make_parents=False, keep_mode=True)
    finally:
        os.umask(umask)
    assert mode(new) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["fresh.json", "report.json"]  # no temp file left
