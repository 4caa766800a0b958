"""Outputs onto real kernel objects: a character device made with mknod in a scratch directory (never the
real /dev), a FIFO with a reader, after `guestcheck doctor -o` and `guestcheck selftest --save`.

`-o /dev/null` is how people ask for the exit code only; a rename over it would leave a regular file where
the system's null device was, until the next boot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.netns import Netns, guestcheck_in, netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NULL = os.makedev(1, 3)  # the null device's numbers; the node is made in tmp_path


def null_device(where: Path) -> Path:
    node = where / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, NULL)
    os.chmod(node, 0o666)
    return node


def is_still_the_null_device(node: Path) -> bool:
    st = os.lstat(node)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == NULL and stat.S_IMODE(st.st_mode) == 0o666


@contextlib.contextmanager
def iperf3_on_loopback(ns: Netns, port: int = 5201) -> Iterator[None]:
    proc = ns.popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not ns.run(["ss", "-Hltn", f"sport = :{port}"]).stdout.strip():
            assert time.monotonic() < deadline and proc.poll() is None, "iperf3 -s did not start"
            time.sleep(0.05)
        yield
    finally:
        proc.kill()
        proc.wait()


def test_doctor_output_to_a_character_device_leaves_the_device(tmp_path):
    null = null_device(tmp_path)
    with netns("gcout") as ns:
        for fmt in ("human", "json", "prometheus"):
            out = guestcheck_in(ns, "doctor", "--sample", "0", "--format", fmt, "-o", str(null))
            assert out.returncode in (0, 1, 2, 3) and out.stdout == "", out
            assert "Error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
            assert is_still_the_null_device(null)
    assert sorted(os.listdir(tmp_path)) == ["null"]  # no temp file beside it, nothing renamed


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")
def test_selftest_save_to_a_character_device_and_a_fifo(tmp_path):
    null = null_device(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = bytearray()
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            with contextlib.suppress(BlockingIOError):
                got.extend(os.read(reader, 65536))
            time.sleep(0.01)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    args = ("selftest", "--peer", "127.0.0.1", "--duration", "1", "--parallel", "1", "--direction", "upload",
            "--expect", "10T")  # far below any loopback: a verdict of 2, and the document is still saved
    try:
        with netns("gcout") as ns, iperf3_on_loopback(ns):
            to_null = guestcheck_in(ns, *args, "--save", str(null), timeout=60)
            to_fifo = guestcheck_in(ns, *args, "--save", str(fifo), timeout=60)
    finally:
        time.sleep(0.2)
        stop.set()
        t.join(5)
        os.close(reader)
    assert to_null.returncode == 2, to_null.stderr
    assert is_still_the_null_device(null)
    assert to_fifo.returncode == 2, to_fifo.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and b'"schema": "guestcheck.selftest/1"' in bytes(got)
    assert sorted(os.listdir(tmp_path)) == ["fifo", "null"]


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")
def test_selftest_to_a_closed_pipe_keeps_its_verdict(tmp_path):
    # `guestcheck selftest ... | head -1`: the reader gone is no error; the exit code is still the verdict's
    args = ("selftest", "--peer", "127.0.0.1", "--duration", "1", "--parallel", "1", "--direction", "upload",
            "--expect", "10T")
    with netns("gcout") as ns, iperf3_on_loopback(ns):
        for extra in ((), ("--json",)):
            read_end, write_end = os.pipe()
            os.close(read_end)
            try:
                out = subprocess.run(["ip", "netns", "exec", ns.name, sys.executable, "-m", "guestcheck", *args,
                                      *extra], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
                                     env={**os.environ, "PYTHONPATH": REPO})
            finally:
                os.close(write_end)
            assert out.returncode == 2 and out.stderr == "", out.stderr
