"""guestcheck/regularfile.py: a file someone else put there is read only when it is a regular file, bounded,
and never waited on."""

from __future__ import annotations

import errno
import os

import pytest

from guestcheck.regularfile import read_regular
from guestcheck.roots import Roots
from guestcheck.tune.conflicts import boot_assignments


def test_a_regular_file_is_read_whole_up_to_the_limit(tmp_path):
    path = tmp_path / "a.conf"
    path.write_bytes(b"x" * 100)
    assert read_regular(str(path), 100) == b"x" * 100
    with pytest.raises(ValueError, match="larger than 99 bytes"):
        read_regular(str(path), 99)


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo.link"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        read_regular(str(fifo), 1024)  # no writer: a blocking open would never return


def test_a_symlink_is_refused_with_nofollow(tmp_path):
    (tmp_path / "target").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    assert read_regular(str(tmp_path / "link"), 10) == b"x"
    with pytest.raises(OSError) as caught:
        read_regular(str(tmp_path / "link"), 10, nofollow=True)
    assert caught.value.errno == errno.ELOOP


def test_a_fifo_in_sysctl_d_does_not_hang_tune(tmp_path):
    etc = tmp_path / "etc/sysctl.d"
    etc.mkdir(parents=True)
    os.mkfifo(etc / "10-fifo.conf")
    (etc / "20-real.conf").write_text("net.ipv4.tcp_fin_timeout = 30\n")
    found = boot_assignments(Roots.under(str(tmp_path)))
    assert [(a.key, a.value) for a in found] == [("net.ipv4.tcp_fin_timeout", "30")]
