"""guestcheck/atomicfile.py: atomic replacement; user-named paths make no directories and keep their mode; an output
path that is a device, a FIFO, a socket or a symlink is written as `>` would, or refused, never renamed over."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import threading
import time

import pytest

from guestcheck.atomicfile import write_atomic, write_output


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
    write_output(str(old), "new")
    assert old.read_text() == "new" and mode(old) == 0o600
    new = tmp_path / "fresh.json"
    os.umask(umask := os.umask(0o077))
    try:
        write_output(str(new), "x")
    finally:
        os.umask(umask)
    assert mode(new) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["fresh.json", "report.json"]  # no temp file left


def test_output_mode_drops_setuid_setgid_sticky_and_world_write(tmp_path):
    old = tmp_path / "report.json"
    old.write_text("old")
    os.chmod(old, 0o7777)
    write_output(str(old), "new")
    assert old.read_text() == "new" and mode(old) == 0o775
    os.chmod(old, 0o2640)
    write_output(str(old), "again")
    assert mode(old) == 0o640


def test_output_without_keep_mode_is_the_given_mode(tmp_path):
    old = tmp_path / "guestcheck.prom"
    old.write_text("old")
    old.chmod(0o600)
    write_output(str(old), "new", 0o644, keep_mode=False)
    assert mode(old) == 0o644


def test_output_to_a_character_device_writes_into_it_and_keeps_it(tmp_path):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers, in a scratch directory
    os.chmod(null, 0o666)  # past the umask
    write_output(str(null), "report\n")
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)
    assert mode(null) == 0o666
    assert os.listdir(tmp_path) == ["null"]  # no temp file left beside it


def test_output_through_a_symlink_to_a_device_writes_the_device_and_keeps_the_link(tmp_path):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (tmp_path / "stdout").symlink_to(null)  # as /dev/stdout -> /proc/self/fd/1 -> a terminal
    write_output(str(tmp_path / "stdout"), "report\n")
    assert os.readlink(tmp_path / "stdout") == str(null) and stat.S_ISCHR(os.lstat(null).st_mode)


def test_output_to_a_fifo_with_a_reader_is_written(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_output(str(fifo), "report\n")
        assert os.read(reader, 100) == b"report\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_output_larger_than_a_pipe_reaches_a_slow_reader_whole(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    payload = b"x" * (1 << 20)  # more than the pipe's buffer: the write blocks until the reader drains it
    got = bytearray()
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)

    def drain() -> None:  # until all has come (EOF before the writer opens is no end), for at most 20 s
        deadline = time.monotonic() + 20
        while len(got) < len(payload) and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                got.extend(os.read(reader, 65536))
            time.sleep(0.001)

    t = threading.Thread(target=drain)
    t.start()
    try:
        write_output(str(fifo), payload)
    finally:
        t.join(10)
        os.close(reader)
    assert bytes(got) == payload


def test_output_to_a_fifo_without_a_reader_is_an_error_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(OSError) as e:
        write_output(str(fifo), "report\n")
    assert time.monotonic() - start < 1
    assert e.value.errno == errno.ENXIO and e.value.strerror == "it is a FIFO with no reader (start the reader first)"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_output_to_a_socket_is_refused(tmp_path):
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        s.listen()
        with pytest.raises(OSError) as e:
            write_output(str(path), "report\n")
    assert e.value.strerror.startswith("it is a socket;")
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_output_to_a_directory_or_a_block_device_is_refused(tmp_path):
    (tmp_path / "dir").mkdir()
    os.mknod(tmp_path / "loop", stat.S_IFBLK | 0o600, os.makedev(7, 250))
    with pytest.raises(OSError) as e:
        write_output(str(tmp_path / "dir"), "x")
    assert e.value.strerror == "Is a directory"
    with pytest.raises(OSError) as e:
        write_output(str(tmp_path / "loop"), "x")
    assert e.value.strerror.startswith("it is a block device;")
    assert stat.S_ISBLK(os.lstat(tmp_path / "loop").st_mode) and sorted(os.listdir(tmp_path)) == ["dir", "loop"]


def test_a_symlink_is_never_followed_into_a_file_nor_replaced(tmp_path):
    victim = tmp_path / "shadow"
    victim.write_text("precious")
    victim.chmod(0o640)
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    with pytest.raises(OSError) as e:
        write_output(str(link), "report")
    assert e.value.strerror.startswith("it is a symbolic link, not followed to a file")
    assert victim.read_text() == "precious" and mode(victim) == 0o640
    assert os.readlink(link) == str(victim)
    dangling = tmp_path / "new.json"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OSError):
        write_output(str(dangling), "report")
    assert not (tmp_path / "nowhere").exists() and os.path.islink(dangling)
    assert sorted(os.listdir(tmp_path)) == ["new.json", "report.json", "shadow"]


def test_own_files_still_replace_a_symlink_itself(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "state.json").symlink_to(victim)
    write_atomic(str(tmp_path / "state.json"), "state")
    assert victim.read_text() == "precious" and not os.path.islink(tmp_path / "state.json")
