"""guestcheck/regularfile.py: a file someone else put there is read only when it is a regular file, bounded,
and never waited on."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from guestcheck import config, firstboot
from guestcheck.collect import fs, udevdb
from guestcheck.collect.ethtool import MAX_REPLAY_BYTES, EthtoolError, EthtoolReplay
from guestcheck.collect.other_agents import collect_agents
from guestcheck.collect.path import nameservers
from guestcheck.regularfile import NotRegularFile, TooLarge, read_regular, read_regular_stat
from guestcheck.roots import Roots
from guestcheck.tune.conflicts import boot_assignments
from guestcheck.tune.linkfile import udev_entry
from tests.fakemachine import REPO, FakeMachine


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


def test_the_stat_is_the_descriptors_and_the_refusals_are_typed(tmp_path):
    """tune's persist file keeps the mode of the very file it read (no second stat, no race with a rename)."""
    path = tmp_path / "90-guestcheck.conf"
    path.write_bytes(b"a = 1\n")
    path.chmod(0o640)
    data, st = read_regular_stat(str(path), 100, nofollow=True)
    assert (data, stat.S_IMODE(st.st_mode)) == (b"a = 1\n", 0o640)
    with pytest.raises(TooLarge, match="larger than 5 bytes"):
        read_regular_stat(str(path), 5)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(NotRegularFile, match="not a regular file"):
        read_regular_stat(str(tmp_path / "fifo"), 100)


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


# --- every file others can control, read through read_regular: a FIFO or a link to a zero device there ---------

HOSTILE = ["fifo", "zero", "dir", "huge"]


def _make_hostile(path: Path, kind: str, huge: int = 0) -> None:
    """A FIFO (a blocking open would wait for a writer for ever), a symlink to a /dev/zero-like device made in
    the test's own directory (an endless read), a directory, or a regular file `huge` bytes long."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        device = path.parent / f".zero-{path.name}"
        os.mknod(device, 0o444 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers, never the real /dev
        path.symlink_to(device)
    elif kind == "dir":
        path.mkdir()
    else:
        with open(path, "wb") as f:
            f.truncate(huge)


def no_hang(call: Callable[[], Any], seconds: int = 10) -> Any:
    """The call's result; the test fails (instead of hanging the suite) when it blocks."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise AssertionError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        return call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_fs_read_refuses_what_is_not_a_regular_file_and_bounds_the_rest(tmp_path):
    for kind in ("fifo", "zero", "dir"):
        _make_hostile(tmp_path / kind, kind)
        got = no_hang(lambda path=str(tmp_path / kind): fs.read(path))
        assert got.value is None and got.problem == "not a regular file", (kind, got)
    _make_hostile(tmp_path / "huge", "huge", 2048)
    assert fs.read(str(tmp_path / "huge"), 1024) == fs.Read(None, "larger than 1024 bytes")
    assert fs.read(str(tmp_path / "missing")).problem == "missing"


@pytest.mark.parametrize("kind", ["fifo", "zero", "dir"])
def test_tuned_active_profile_and_resolv_conf(tmp_path, kind):
    m = FakeMachine(tmp_path)
    _make_hostile(tmp_path / "etc/tuned/active_profile", kind)
    _make_hostile(tmp_path / "etc/resolv.conf", kind)
    assert no_hang(lambda: collect_agents(m.roots)).tuned_profiles == []
    assert no_hang(lambda: nameservers(m.roots)) == []


def test_resolv_conf_behind_the_stub_with_a_hostile_upstream_file(tmp_path):
    m = FakeMachine(tmp_path)
    m.write("etc/resolv.conf", "nameserver 127.0.0.53\n")
    _make_hostile(tmp_path / "run/systemd/resolve/resolv.conf", "fifo")
    assert no_hang(lambda: nameservers(m.roots)) == ["127.0.0.53"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_ethtool_replay_files(tmp_path, kind):
    _make_hostile(tmp_path / "eth0.json", kind, MAX_REPLAY_BYTES + 1)
    with pytest.raises(EthtoolError) as caught:
        no_hang(lambda: EthtoolReplay(str(tmp_path)).drvinfo("eth0"))
    assert caught.value.reason in ("malformed", "not-captured")


@pytest.mark.parametrize("kind", ["fifo", "zero", "dir"])
def test_udev_database_as_tune_offloads_reads_it(tmp_path, kind):
    m = FakeMachine(tmp_path)
    _make_hostile(tmp_path / "run/udev/data/n2", kind)
    assert no_hang(lambda: udev_entry(m.roots, 2)) == {}
    assert not no_hang(lambda: udevdb.udev_properties(m.roots, 2))


@pytest.mark.parametrize("kind", HOSTILE)
def test_first_boot_settings_instance_data_and_stamp(tmp_path, kind):
    m = FakeMachine(tmp_path)
    m.write("etc/machine-id", "0123456789abcdef0123456789abcdef\n")
    _make_hostile(Path(config.config_path(m.roots)), kind, config.MAX_CONFIG + 1)
    _make_hostile(tmp_path / "run/cloud-init/instance-data.json", kind, firstboot.MAX_INSTANCE_DATA + 1)
    _make_hostile(Path(firstboot.stamp_path(m.roots)), kind, firstboot.MAX_STAMP + 1)
    settings = no_hang(lambda: config.load_settings(m.roots))
    assert settings.enabled and len(settings.problems) == 1 and "using defaults" in settings.problems[0]
    assert no_hang(lambda: firstboot.current_instance(m.roots)).source == "machine-id"
    assert no_hang(lambda: firstboot.checked_instance(m.roots)) is None


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_refresh_with_a_hostile_guestcheck_conf_finishes(tmp_path, kind):
    """`refresh` hung for good when guestcheck.conf was a FIFO."""
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="virtio_net", bus="virtio")
    _make_hostile(Path(config.config_path(m.roots)), kind)
    env = {**os.environ, "GUESTCHECK_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "guestcheck", "refresh"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "not a regular file" in out.stdout + out.stderr
