"""A fake tracefs for unit tests: a directory tree with the files the tracer reads, and `FakeOps` standing in for
what only the kernel does (a mkdir in instances/ that fills the new directory, a mount).

The format files are real captures or reconstructions (tests/unit/data/trace/README.md says which).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import List, Optional, Tuple

from guestcheck.roots import Roots
from guestcheck.trace import tracefs

DATA = Path(__file__).resolve().parent / "unit" / "data" / "trace"
SYSFS_LINE = "22 1 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
TRACEFS_LINE = "{id} 22 0:12 / /sys/kernel/tracing {opts} shared:9 - tracefs tracefs {opts}\n"


def format_text(kernel: str) -> str:
    return (DATA / f"kfree_skb_format-{kernel}").read_text()


class FakeTracefs:
    def __init__(self, base: Path, *, kernel: str = "6.18", mounted: bool = True, read_only: bool = False,
                 tracing_dir: bool = True) -> None:
        self.base = base
        self.roots = Roots.under(str(base))
        self.kernel = kernel
        self.read_only = read_only
        self.top = base / "sys/kernel/tracing"
        (base / "proc/self").mkdir(parents=True)
        if tracing_dir:
            self.top.mkdir(parents=True)
        self.mounted = False
        self.write_mountinfo(mounted)
        if mounted:
            self.populate()
        self.pipe_lines: List[str] = []

    def write_mountinfo(self, mounted: bool, mount_id: int = 40) -> None:
        opts = "ro" if self.read_only else "rw"
        text = SYSFS_LINE + (TRACEFS_LINE.format(id=mount_id, opts=opts) if mounted else "")
        (self.base / "proc/self/mountinfo").write_text(text)
        self.mounted = mounted

    def populate(self) -> None:
        event = self.top / "events/skb/kfree_skb"
        event.mkdir(parents=True, exist_ok=True)
        (event / "format").write_text(format_text(self.kernel))
        (event / "enable").write_text("0\n")
        (self.top / "instances").mkdir(exist_ok=True)
        (self.top / "tracing_on").write_text("1\n")
        (self.top / "set_event").write_text("")
        (self.top / "trace").write_text("# tracer: nop\n")

    def instance(self, name: str) -> Path:
        return self.top / "instances" / name


class FakeOps(tracefs.Ops):
    """tracefs's behaviour on the fake tree; records every call."""

    def __init__(self, fake: FakeTracefs, *, lines: Optional[List[str]] = None, mkdir_errno: Optional[int] = None,
                 mount_errno: Optional[int] = None) -> None:
        self.fake = fake
        self.lines = lines or []
        self.mkdir_errno = mkdir_errno
        self.mount_errno = mount_errno
        self.calls: List[Tuple[str, str]] = []

    def mount_tracefs(self, target: str) -> None:
        self.calls.append(("mount", target))
        if self.mount_errno:
            raise OSError(self.mount_errno, os.strerror(self.mount_errno))
        self.fake.populate()
        self.fake.write_mountinfo(True, mount_id=77)

    def unmount(self, target: str, lazy: bool = False) -> None:
        self.calls.append(("unmount", target))
        self.fake.write_mountinfo(False)

    def make_instance(self, path: str) -> None:
        self.calls.append(("mkdir", path))
        if self.fake.read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        if self.mkdir_errno:
            raise OSError(self.mkdir_errno, os.strerror(self.mkdir_errno))
        os.mkdir(path)
        event = Path(path) / "events/skb/kfree_skb"
        event.mkdir(parents=True)
        (event / "enable").write_text("0\n")
        (Path(path) / "trace_pipe").write_text("".join(line + "\n" for line in self.lines))

    def remove_instance(self, path: str) -> None:
        self.calls.append(("rmdir", path))
        shutil.rmtree(path)

    def write_control(self, path: str, value: bytes) -> None:
        self.calls.append(("write", f"{path}={value.decode()}"))
        super().write_control(path, value)
