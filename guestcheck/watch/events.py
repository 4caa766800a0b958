"""NIC add and remove events for `watch`, as they happen: a VF that vanishes during host maintenance.

Two sources. udev (pyudev's Monitor, imported only when used) where udevd runs in this network namespace: it
sends its "add"/"remove"/"move" after its rules ran, so names are the final ones. Elsewhere rtnetlink: an
AF_NETLINK socket in the RTMGRP_LINK group (the standard library is enough), which also shows carrier up/down.
The kernel sends a network device's uevents and rtnetlink messages only into the device's own network
namespace, and udevd listens in the first one: inside any other namespace rtnetlink is the only source.
Interface names come from the kernel or udev and are escaped before they reach a terminal (view.py).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from guestcheck.roots import Roots
from guestcheck.rtnetlink import attributes, messages

SOURCES = ("auto", "udev", "rtnetlink", "none")
RTMGRP_LINK = 1
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFLA_IFNAME = 3
IFF_LOWER_UP = 1 << 16
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
MAX_READS = 64  # messages taken per read(): the rest wait for the next one (select says they are there)


@dataclass(frozen=True)
class LinkEvent:
    when: float  # time.time()
    kind: str  # added | removed | renamed | link up | link down | lost (the socket overflowed)
    name: str
    old_name: str = ""


class EventSourceError(Exception):
    """The chosen event source cannot be opened; the message says why, in one line."""


def parse_link_messages(data: bytes) -> List[Tuple[int, int, int, str]]:
    """rtnetlink messages -> (message type, ifindex, flags, name) for RTM_NEWLINK/RTM_DELLINK; the rest, and
    anything truncated or malformed, is skipped."""
    out = []
    for msg_type, body in messages(data):
        if msg_type not in (RTM_NEWLINK, RTM_DELLINK) or len(body) < _IFINFO.size:
            continue
        _, _, index, flags, _ = _IFINFO.unpack_from(body, 0)
        name = ""
        for rta_type, payload in attributes(body, _IFINFO.size):
            if rta_type == IFLA_IFNAME:
                name = payload.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        out.append((msg_type, index, flags, name))
    return out


class LinkTracker:
    """Turns link messages into events: an index not seen before was added; a known one renamed or changed
    carrier. Starts from the interfaces present, so the links that already exist make no events."""

    def __init__(self, present: Dict[int, Tuple[str, int]]) -> None:
        self.known = dict(present)  # ifindex -> (name, flags)

    def feed(self, msg_type: int, index: int, flags: int, name: str, when: float) -> List[LinkEvent]:
        if msg_type == RTM_DELLINK:
            old = self.known.pop(index, None)
            return [LinkEvent(when, "removed", name or (old[0] if old else f"index {index}"))]
        old = self.known.get(index)
        self.known[index] = (name or (old[0] if old else ""), flags)
        if old is None:
            return [LinkEvent(when, "added", name)]
        events = []
        if name and name != old[0]:
            events.append(LinkEvent(when, "renamed", name, old[0]))
        if (flags ^ old[1]) & IFF_LOWER_UP:
            events.append(LinkEvent(when, "link up" if flags & IFF_LOWER_UP else "link down", name or old[0]))
        return events


class RtnetlinkEvents:
    source = "rtnetlink"

    def __init__(self, present: Dict[int, Tuple[str, int]]) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                       socket.NETLINK_ROUTE)
            self._sock.bind((0, RTMGRP_LINK))
        except OSError as e:
            raise EventSourceError(f"cannot open an rtnetlink socket: {e.strerror or e}") from None
        self._sock.setblocking(False)
        self._tracker = LinkTracker(present)

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self) -> List[LinkEvent]:
        """What has arrived, up to MAX_READS messages: under a flood of link changes the loop still ticks."""
        events: List[LinkEvent] = []
        for _ in range(MAX_READS):
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                return events
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # the kernel dropped messages: say so, carry on
                    events.append(LinkEvent(time.time(), "lost", "", "some link events were lost"))
                    continue
                raise
            for msg_type, index, flags, name in parse_link_messages(data):
                events += self._tracker.feed(msg_type, index, flags, name, time.time())
        return events

    def close(self) -> None:
        self._sock.close()


class UdevEvents:
    source = "udev"

    def __init__(self) -> None:
        try:
            import pyudev
        except ImportError:
            raise EventSourceError("udev events need pyudev: apt-get install python3-pyudev") from None
        try:
            self._monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            self._monitor.filter_by("net")
            self._monitor.start()
        except (OSError, ImportError) as e:  # ImportError: libudev itself is missing
            raise EventSourceError(f"cannot listen to udev: {e}") from None

    def fileno(self) -> int:
        return self._monitor.fileno()

    def read(self) -> List[LinkEvent]:
        events = []
        for _ in range(MAX_READS):
            device = self._monitor.poll(timeout=0)
            if device is None:
                return events
            kind = {"add": "added", "remove": "removed", "move": "renamed"}.get(device.action or "")
            if kind is None:
                continue
            old = device.get("DEVPATH_OLD", "") if kind == "renamed" else ""
            events.append(LinkEvent(time.time(), kind, device.sys_name, os.path.basename(old)))
        return events

    def close(self) -> None:
        self._monitor = None  # pyudev closes the socket with the Monitor


def same_netns_as_init(proc: str = "/proc") -> bool:
    """Whether this process shares PID 1's network namespace (where udevd listens). Unknown counts as yes."""
    try:
        return os.stat(os.path.join(proc, "self/ns/net")).st_ino == os.stat(os.path.join(proc, "1/ns/net")).st_ino
    except OSError:
        return True


def udevd_runs(roots: Roots) -> bool:
    return os.path.exists(os.path.join(roots.run, "udev", "control"))


def choose_source(wanted: str, roots: Roots) -> str:
    """auto: udev where udevd runs and shares our network namespace, else rtnetlink."""
    if wanted != "auto":
        return wanted
    return "udev" if udevd_runs(roots) and same_netns_as_init(roots.proc) else "rtnetlink"


def open_events(wanted: str, roots: Roots, present: Dict[int, Tuple[str, int]]) -> Optional[object]:
    """The event source for --events; None for "none". Raises EventSourceError with a one-line reason."""
    source = choose_source(wanted, roots)
    if source == "none":
        return None
    if source == "udev":
        return UdevEvents()
    return RtnetlinkEvents(present)
