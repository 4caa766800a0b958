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
import os
import socket
import struct
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional

from guestcheck.facts import Channels, Feature, Rings
from guestcheck.regularfile import TooLarge, read_regular
from guestcheck.strictjson import loads as strict_json

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x00000003
ETHTOOL_GRINGPARAM = 0x00000010
ETHTOOL_GPERMADDR = 0x00000020
MAX_ADDR_LEN = 32
ETHTOOL_GSTRINGS = 0x0000001B
ETHTOOL_GSTATS = 0x0000001D
ETHTOOL_GSSET_INFO = 0x00000037
ETHTOOL_GFEATURES = 0x0000003A
ETHTOOL_GCHANNELS = 0x0000003C
ETH_SS_STATS = 1
ETH_SS_FEATURES = 4
MAX_STATS = 1 << 16  # more names than any driver has: a larger count is a broken answer, not a list to allocate
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
    """ETHTOOL_GDRVINFO's answer: driver, version, firmware and bus address."""

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

    def _string_count(self, ifname: str, string_set: int) -> int:
        buf = array.array("B", struct.pack("IIQI", ETHTOOL_GSSET_INFO, 0, 1 << string_set, 0))
        self._ioctl(ifname, buf)
        mask, count = struct.unpack_from("Q", buf.tobytes(), 8)[0], struct.unpack_from("I", buf.tobytes(), 16)[0]
        if not mask & (1 << string_set):
            raise EthtoolError("unsupported", f"string set {string_set}")
        return count

    def _strings(self, ifname: str, string_set: int, count: int) -> list[str]:
        buf = array.array("B", struct.pack("III", ETHTOOL_GSTRINGS, string_set, count))
        buf.extend(bytes(count * ETH_GSTRING_LEN))
        self._ioctl(ifname, buf)
        raw = buf.tobytes()[12:]
        return [raw[i * ETH_GSTRING_LEN : (i + 1) * ETH_GSTRING_LEN].split(b"\0", 1)[0].decode("ascii", "replace")
                for i in range(count)]

    def _feature_strings(self, ifname: str) -> list[str]:
        """The kernel's feature names; never map by bit number, the order changes between kernels."""
        count = self._string_count(ifname, ETH_SS_FEATURES)
        if count not in self._feature_names:  # same kernel, same table
            self._feature_names[count] = self._strings(ifname, ETH_SS_FEATURES, count)
        return self._feature_names[count]

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

    def rings(self, ifname: str) -> Rings:
        """ETHTOOL_GRINGPARAM: struct ethtool_ringparam, the maxima then the current sizes (`ethtool -g`)."""
        buf = array.array("B", struct.pack("I", ETHTOOL_GRINGPARAM) + bytes(32))
        self._ioctl(ifname, buf)
        return Rings(*struct.unpack_from("8I", buf.tobytes(), 4))

    def perm_addr(self, ifname: str) -> Optional[str]:
        """ETHTOOL_GPERMADDR: the hardware address the device came with (`ethtool -P`), None when it has none
        (all zeros: software devices such as veth)."""
        buf = array.array("B", struct.pack("II", ETHTOOL_GPERMADDR, MAX_ADDR_LEN) + bytes(MAX_ADDR_LEN))
        self._ioctl(ifname, buf)
        raw = buf.tobytes()
        size = min(struct.unpack_from("I", raw, 4)[0], MAX_ADDR_LEN)
        data = raw[8:8 + size]
        return ":".join(f"{b:02x}" for b in data) if any(data) else None

    def stats(self, ifname: str) -> Dict[str, int]:
        """The driver's own counters (`ethtool -S`): ETH_SS_STATS names, then ETHTOOL_GSTATS values (u64).
        The names are read for every interface: they depend on the driver and its queue count."""
        count = self._string_count(ifname, ETH_SS_STATS)
        if not 0 < count <= MAX_STATS:
            if count == 0:
                return {}
            raise EthtoolError("malformed", f"{count} statistics")
        names = self._strings(ifname, ETH_SS_STATS, count)
        buf = array.array("B", struct.pack("II", ETHTOOL_GSTATS, count) + bytes(8 * count))
        self._ioctl(ifname, buf)
        values = struct.unpack_from(f"{count}Q", buf.tobytes(), 8)
        out: Dict[str, int] = {}
        for name, value in zip(names, values):
            if name:
                out[name] = value  # a name a driver repeats keeps its last value, as `ethtool -S` shows both
        return out


def decode_features(names: List[str], blocks: bytes) -> Dict[str, Feature]:
    """The GFEATURES answer after its header: one block of four u32 words per 32 features, in the order of
    the ETH_SS_FEATURES strings. The one decoder of these words (the tuner reads `requested` from it too)."""
    out: Dict[str, Feature] = {}
    words = [struct.unpack_from("IIII", blocks, offset) for offset in range(0, len(blocks) - 15, 16)]
    for i, name in enumerate(names):
        if not name or i // 32 >= len(words):
            continue
        available, requested, active, never_changed = words[i // 32]
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
_U64 = 1 << 64


def replay_document(drvinfo: Optional[DrvInfo], features: Optional[Dict[str, Feature]],
                    channels: Optional[Channels], errors: Optional[Dict[str, str]] = None, *,
                    rings: Optional[Rings] = None, stats: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """ROOT/ethtool/IFACE.json: {"drvinfo": {...}, "features": {name: {...}}, "channels": {...},
    "rings": {...}, "stats": {name: value}}, each key either the answer (the same fields as the facts:
    DrvInfo, Feature, Channels, Rings, the driver's counters) or {"error": reason}. A key that is absent reads
    as "not-captured"."""
    errors = errors or {}
    doc: Dict[str, Any] = {}
    answers = (("drvinfo", drvinfo), ("features", features), ("channels", channels), ("rings", rings),
               ("stats", stats))
    for key, value in answers:
        if key in errors:
            doc[key] = {"error": errors[key]}
        elif value is None:
            continue
        elif key == "features":
            doc[key] = {n: asdict(f) for n, f in value.items()}  # type: ignore[union-attr]
        elif key == "stats":
            doc[key] = dict(value)  # type: ignore[call-overload]
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
        # not names.valid_ifname on purpose: a capture may hold any name its sysfs had; this only keeps the name
        # one path component under the capture's directory
        if not ifname or "/" in ifname or ifname in (".", "..") or "\0" in ifname:
            raise EthtoolError("no-device", f"bad interface name {ifname!r}")
        path = os.path.join(self.directory, f"{ifname}.json")
        try:  # a capture is outside input: a FIFO or /dev/zero there is refused, never waited on or read on
            raw = read_regular(path, MAX_REPLAY_BYTES)
        except FileNotFoundError:
            raise EthtoolError("not-captured", path) from None
        except OSError as e:
            raise EthtoolError("not-captured", f"{path}: {e.strerror}") from None
        except TooLarge:
            raise EthtoolError("malformed", f"{path} is over {MAX_REPLAY_BYTES} bytes") from None
        except ValueError as e:
            raise EthtoolError("malformed", f"{path}: {e}") from None
        try:  # a capture is outside input: no NaN, no 400-digit numbers, no nesting deep enough to recurse
            doc = strict_json(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
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

    def _u32s(self, ifname: str, key: str, record: Any) -> Any:
        answer = self._answer(ifname, key)
        values = {}
        for f in fields(record):
            value = answer.get(f.name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U32:
                raise EthtoolError("malformed", f"{key}.{f.name}: expected a u32")
            values[f.name] = value
        return record(**values)

    def channels(self, ifname: str) -> Channels:
        return self._u32s(ifname, "channels", Channels)

    def rings(self, ifname: str) -> Rings:
        return self._u32s(ifname, "rings", Rings)

    def stats(self, ifname: str) -> Dict[str, int]:
        answer = self._answer(ifname, "stats")
        if len(answer) > MAX_STATS:
            raise EthtoolError("malformed", f"stats: more than {MAX_STATS} counters")
        for name, value in answer.items():
            if not name or isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U64:
                raise EthtoolError("malformed", f"stats.{name}: expected a u64")
        return dict(answer)


def ethtool_source(roots: Any) -> Any:
    """The ioctls when sysfs is the real one; when it is a fake tree (GUESTCHECK_ROOT, tests) the answers recorded
    next to it, ROOT/ethtool/IFACE.json, so an offline replay never asks the live kernel."""
    if os.path.normpath(roots.sys) != "/sys":
        return EthtoolReplay(os.path.join(os.path.dirname(os.path.normpath(roots.sys)), REPLAY_DIR))
    return Ethtool()
