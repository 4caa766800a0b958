"""The ethtool ioctls guestcheck needs, through SIOCETHTOOL on a datagram socket.

Why not pyroute2: it has no ETHTOOL_GDRVINFO at all, 0.7.2 (Debian 12) has no get_channels, and
importing it costs ~370 ms at boot. These GET calls need no privilege and no extra module.
Errors map to a small set of reasons ("unsupported", "no-device", "denied") that the collectors
turn into "unknown" for that one value.
"""

from __future__ import annotations

import array
import errno
import fcntl
import socket
import struct
from dataclasses import dataclass
from typing import Dict, Optional

from guestcheck.facts import Channels, Feature

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x00000003
ETHTOOL_GSTRINGS = 0x0000001B
ETHTOOL_GSSET_INFO = 0x00000037
ETHTOOL_GFEATURES = 0x0000003A
ETHTOOL_GCHANNELS = 0x0000003C
ETH_SS_FEATURES = 4
ETH_GSTRING_LEN = 32
IFNAMSIZ = 16


class EthtoolError(Exception):
    """An ioctl that did not answer; `reason` is what the report shows."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _reason(e: OSError) -> str:
    if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
        return "unsupported"
    if e.errno in (errno.ENODEV, errno.ENXIO):
        return "no-device"
    if e.errno in (errno.EPERM, errno.EACCES):
        return "denied"
    return errno.errorcode.get(e.errno or 0, "error")


@dataclass(frozen=True)
class DrvInfo:
    driver: str
    version: str
    firmware: str
    bus_info: str


class Ethtool:
    """One socket for all interfaces; use as a context manager."""

    def __init__(self) -> None:
        self._sock: Optional[socket.socket] = None
        self._feature_names: Dict[str, list[str]] = {}

    def __enter__(self) -> Ethtool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()

    def _ioctl(self, ifname: str, buf: array.array) -> None:
        name = ifname.encode("utf-8", "surrogateescape")
        if not name or len(name) >= IFNAMSIZ:
            raise EthtoolError("no-device", f"bad interface name {ifname!r}")
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        addr, _ = buf.buffer_info()
        ifreq = struct.pack(f"{IFNAMSIZ}sP", name, addr)
        try:
            fcntl.ioctl(self._sock.fileno(), SIOCETHTOOL, ifreq)
        except OSError as e:
            raise EthtoolError(_reason(e), e.strerror or "") from None

    def drvinfo(self, ifname: str) -> DrvInfo:
        buf = array.array("B", struct.pack("I", ETHTOOL_GDRVINFO) + bytes(192))
        self._ioctl(ifname, buf)
        raw = buf.tobytes()

        def field(i: int) -> str:
            chunk = raw[4 + 32 * i : 4 + 32 * (i + 1)]
            return chunk.split(b"\0", 1)[0].decode("utf-8", "replace")

        return DrvInfo(driver=field(0), version=field(1), firmware=field(2), bus_info=field(3))

    def _feature_strings(self, ifname: str) -> list[str]:
        """The kernel's feature names; never map by bit number, the order changes between kernels."""
        buf = array.array("B", struct.pack("IIQI", ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES, 0))
        self._ioctl(ifname, buf)
        count = struct.unpack_from("I", buf.tobytes(), 16)[0]
        if count in self._feature_names:  # same kernel, same table
            return self._feature_names[count]
        buf = array.array("B", struct.pack("III", ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count))
        buf.extend(bytes(count * ETH_GSTRING_LEN))
        self._ioctl(ifname, buf)
        raw = buf.tobytes()[12:]
        names = [
            raw[i * ETH_GSTRING_LEN : (i + 1) * ETH_GSTRING_LEN].split(b"\0", 1)[0].decode("ascii", "replace")
            for i in range(count)
        ]
        self._feature_names[count] = names
        return names

    def features(self, ifname: str) -> Dict[str, Feature]:
        names = self._feature_strings(ifname)
        blocks = (len(names) + 31) // 32
        buf = array.array("B", struct.pack("II", ETHTOOL_GFEATURES, blocks) + bytes(16 * blocks))
        self._ioctl(ifname, buf)
        raw = buf.tobytes()
        out: Dict[str, Feature] = {}
        for i, name in enumerate(names):
            if not name:
                continue
            available, _requested, active, never_changed = struct.unpack_from("IIII", raw, 8 + 16 * (i // 32))
            bit = 1 << (i % 32)
            # ethtool prints "[fixed]" when the bit is not changeable or never changes
            out[name] = Feature(on=bool(active & bit), fixed=not (available & bit) or bool(never_changed & bit))
        return out

    def channels(self, ifname: str) -> Channels:
        buf = array.array("B", struct.pack("I", ETHTOOL_GCHANNELS) + bytes(32))
        self._ioctl(ifname, buf)
        v = struct.unpack_from("8I", buf.tobytes(), 4)
        return Channels(*v)
