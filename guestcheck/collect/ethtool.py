"""The ethtool ioctls guestcheck needs, through SIOCETHTOOL on a datagram socket.

Why not pyroute2: it has no ETHTOOL_GDRVINFO at all, 0.7.2 (Debian 12) has no get_channels, and
importing it costs ~370 ms at boot. These GET calls need no privilege and no extra module.
Errors map to a small set of reasons ("unsupported", "no-device", "denied") that the collectors
turn into "unknown" for that one value.

Under a fake root (GUESTCHECK_ROOT, tests) the answers come from files instead: `EthtoolReplay` reads
ROOT/ethtool/IFACE.json, the same answers in the same form as the facts carry them (see `replay_document`),
so a capture replays fully offline and never picks up the live machine's drivers.
"""

from __future__ import annotations

import array
import errno
import fcntl
import json
import os
import socket
import struct
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional

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
        """ETHTOOL_GFEATURES: all four words (available, requested, active, never_changed) of every feature."""
        names = self._feature_strings(ifname)
        blocks = (len(names) + 31) // 32
        buf = array.array("B", struct.pack("II", ETHTOOL_GFEATURES, blocks) + bytes(16 * blocks))
        self._ioctl(ifname, buf)
        return decode_features(names, buf.tobytes()[8:])

    def channels(self, ifname: str) -> Channels:
        buf = array.array("B", struct.pack("I", ETHTOOL_GCHANNELS) + bytes(32))
        self._ioctl(ifname, buf)
        v = struct.unpack_from("8I", buf.tobytes(), 4)
        return Channels(*v)


def decode_features(names: List[str], blocks: bytes) -> Dict[str, Feature]:
    """The GFEATURES answer after its header: one block of four u32 words per 32 features, in the order of
    the ETH_SS_FEATURES strings. The one decoder of these words (the tuner reads `requested` from it too)."""
    out: Dict[str, Feature] = {}
    for i, name in enumerate(names):
        offset = 16 * (i // 32)
        if not name or offset + 16 > len(blocks):
            continue
        available, requested, active, never_changed = struct.unpack_from("IIII", blocks, offset)
        bit = 1 << (i % 32)
        out[name] = Feature(
            on=bool(active & bit),
            # ethtool prints "[fixed]" when the bit is not changeable or never changes
            fixed=not (available & bit) or bool(never_changed & bit),
            requested=bool(requested & bit),
            available=bool(available & bit),
            never_changed=bool(never_changed & bit),
        )
    return out


# --- replay: the ioctl answers of a capture, one JSON file per interface ---

REPLAY_DIR = "ethtool"  # below the fake root: ROOT/ethtool/IFACE.json, next to ROOT/sys
MAX_REPLAY_BYTES = 1 << 20
_U32 = 1 << 32


def replay_document(drvinfo: Optional[DrvInfo], features: Optional[Dict[str, Feature]],
                    channels: Optional[Channels], errors: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """ROOT/ethtool/IFACE.json: {"drvinfo": {...}, "features": {name: {...}}, "channels": {...}}, each key
    either the answer (the same fields as the facts: DrvInfo, Feature, Channels) or {"error": reason}.
    A key that is absent reads as "not-captured"."""
    errors = errors or {}
    doc: Dict[str, Any] = {}
    for key, value in (("drvinfo", drvinfo), ("features", features), ("channels", channels)):
        if key in errors:
            doc[key] = {"error": errors[key]}
        elif value is None:
            continue
        elif key == "features":
            doc[key] = {n: asdict(f) for n, f in value.items()}  # type: ignore[union-attr]
        else:
            doc[key] = asdict(value)  # type: ignore[call-overload]
    return doc


def _bool(value: Any, where: str, optional: bool = False) -> Optional[bool]:
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise EthtoolError("malformed", f"{where}: expected true/false")
    return value


class EthtoolReplay:
    """The GET answers of a captured machine, from DIRECTORY/IFACE.json (see `replay_document`)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def __enter__(self) -> EthtoolReplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _answer(self, ifname: str, key: str) -> Any:
        if not ifname or "/" in ifname or ifname in (".", "..") or "\0" in ifname:
            raise EthtoolError("no-device", f"bad interface name {ifname!r}")
        path = os.path.join(self.directory, f"{ifname}.json")
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_REPLAY_BYTES + 1)
        except FileNotFoundError:
            raise EthtoolError("not-captured", path) from None
        except OSError as e:
            raise EthtoolError("not-captured", f"{path}: {e.strerror}") from None
        if len(raw) > MAX_REPLAY_BYTES:
            raise EthtoolError("malformed", f"{path} is over {MAX_REPLAY_BYTES} bytes")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EthtoolError("malformed", f"{path}: {e}") from None
        if not isinstance(doc, dict):
            raise EthtoolError("malformed", f"{path}: expected an object")
        answer = doc.get(key)
        if answer is None:
            raise EthtoolError("not-captured", f"{path} has no {key}")
        if not isinstance(answer, dict):
            raise EthtoolError("malformed", f"{path}: {key} is not an object")
        if "error" in answer:
            reason = answer["error"]
            raise EthtoolError(reason if isinstance(reason, str) and reason.isprintable() and reason
                               else "malformed", f"{path}: {key}")
        return answer

    def drvinfo(self, ifname: str) -> DrvInfo:
        answer = self._answer(ifname, "drvinfo")
        values = {}
        for f in fields(DrvInfo):
            value = answer.get(f.name, "")
            if not isinstance(value, str):
                raise EthtoolError("malformed", f"drvinfo.{f.name}: expected a string")
            values[f.name] = value[:32]  # the kernel's fields are 32 bytes
        return DrvInfo(**values)

    def features(self, ifname: str) -> Dict[str, Feature]:
        answer = self._answer(ifname, "features")
        out = {}
        for name, words in answer.items():
            where = f"features.{name}"
            if not isinstance(words, dict) or not name:
                raise EthtoolError("malformed", f"{where}: expected an object")
            on = _bool(words.get("on"), f"{where}.on")
            fixed = _bool(words.get("fixed"), f"{where}.fixed")
            out[name] = Feature(on=bool(on), fixed=bool(fixed),
                                requested=_bool(words.get("requested"), f"{where}.requested", True),
                                available=_bool(words.get("available"), f"{where}.available", True),
                                never_changed=_bool(words.get("never_changed"), f"{where}.never_changed", True))
        return out

    def channels(self, ifname: str) -> Channels:
        answer = self._answer(ifname, "channels")
        values = {}
        for f in fields(Channels):
            value = answer.get(f.name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U32:
                raise EthtoolError("malformed", f"channels.{f.name}: expected a u32")
            values[f.name] = value
        return Channels(**values)
