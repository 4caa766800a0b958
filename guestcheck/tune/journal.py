"""The tuner's journal: what the machine looked like before guestcheck changed it.

It is written before the first change of every run and holds the ORIGINAL value of everything
guestcheck has touched, so `rollback` restores the machine as it was before guestcheck, whatever
was applied in between or wherever a run was killed. Applying a second profile keeps the first
backup. The file is JSON under /var/lib/guestcheck/; this module reads it, writes it (atomically, `save_state`)
and holds the lock that keeps one tuner at a time; the engine (engine.py) decides when.

Format /2 (written since issue 18): the files guestcheck replaced are kept as base64 of their bytes, so a
journal's size is predictable (4/3 of the files it keeps; /1 spent up to six bytes on each byte that was not
UTF-8), and every tuned NIC is recorded with its identity (`nics`: its permanent address, or, for a device
without one, its address, ifindex and the boot id). Every writer checks that the journal fits MAX_JOURNAL_BYTES,
what `load_state` reads, before anything changes (`check_fits`). Format /1 (1ab7483: contents as text with
surrogate escapes, no NIC identity) is still read; such NICs are found by name as they were then.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from guestcheck.atomicfile import write_atomic
from guestcheck.names import FILE_SAFE_IFNAME, valid_ifname
from guestcheck.regularfile import TooLarge, read_regular
from guestcheck.roots import Roots
from guestcheck.strictjson import JSONInputError, decoder, loads
from guestcheck.text import escape_control
from guestcheck.tune import TuneError
from guestcheck.tune.keys import BadKey, check_syntax
from guestcheck.tune.linkfile import HW_ADDRESS, LINK_LINE, RPS_MASK, RX_QUEUE, match_problem
from guestcheck.tune.persist import MAX_BYTES as MAX_PERSIST_BYTES
from guestcheck.tune.persist import encode, os_error, remove

STATE_SCHEMA = "guestcheck.tune-state/2"
OLD_SCHEMA = "guestcheck.tune-state/1"  # 1ab7483 and before: read, never written
PERSIST_NAME = "90-guestcheck.conf"
MAX_JOURNAL_BYTES = 4 * 1024 * 1024
MAX_VALUE_LENGTH = 4096
CHANNEL_NAMES = ("rx", "tx", "other", "combined")
MAX_CHANNELS = 65535
RING_NAMES = ("rx", "tx", "rx_mini", "rx_jumbo")
MAX_RING = 1 << 20  # descriptors per ring: no driver has more
# the names linkfile.file_names gives: NN-guestcheck-IFACE.link / .rules, IFACE as names.FILE_SAFE_IFNAME
LINK_NAME = re.compile(rf"[0-9]{{2}}-guestcheck-(?:{FILE_SAFE_IFNAME.pattern})\.(link|rules)")
# the [Link] settings guestcheck writes (systemd 252's names, see systemd.link(5))
LINK_SETTINGS = ("ReceiveChecksumOffload", "TransmitChecksumOffload", "TCPSegmentationOffload",
                 "TCP6SegmentationOffload", "GenericSegmentationOffload", "GenericReceiveOffload", "RxChannels",
                 "TxChannels", "OtherChannels", "CombinedChannels", "RxBufferSize", "TxBufferSize")
_FEATURE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_RULE_ARG = re.compile(rf"[KLG]:{_FEATURE.pattern}")  # ethtool -K feature, -L channel, -G ring
_BOOT_ID = re.compile(r"[0-9A-Fa-f-]{1,64}")
MAX_IFINDEX = 2**31 - 1
MAX_B64 = 4 * ((MAX_PERSIST_BYTES + 2) // 3)  # the base64 of the largest file the tuner keeps


def state_path(roots: Roots) -> str:
    return os.path.join(roots.var_lib, "guestcheck", "tune-state.json")


def lock_path(roots: Roots) -> str:
    return os.path.join(roots.var_lib, "guestcheck", "tune.lock")


def persist_path(roots: Roots) -> str:
    return os.path.join(roots.etc, "sysctl.d", PERSIST_NAME)


@dataclass
class SysctlBackup:
    original: str  # the live value before guestcheck first changed it
    applied: str  # what guestcheck set (last successful run)


@dataclass
class LinkRecord:
    """What `tune offloads/queues/rings/rps` persisted for one interface, and what was at those paths before."""

    name: str  # the .link file's name under /etc/systemd/network (50-guestcheck-IFACE.link)
    match: List[str] = field(default_factory=list)  # its [Match] lines ("PermanentMACAddress=...")
    carried: List[str] = field(default_factory=list)  # [Link] lines carried over from the file that applied
    settings: Dict[str, str] = field(default_factory=dict)  # [Link] settings guestcheck set (what boot applies)
    original: Optional[str] = None  # the file at that name before guestcheck, None if absent
    mode: Optional[int] = None
    rule_name: Optional[str] = None  # the udev rule under /etc/udev/rules.d, when one is needed
    # what only the rule carries: ethtool settings ("K:tx-scatter-gather" -> "on"), RPS masks ("R:rx-0" -> "f")
    rule_args: Dict[str, str] = field(default_factory=dict)
    rule_original: Optional[str] = None
    rule_mode: Optional[int] = None
    rule_recorded: bool = False


@dataclass
class NicIdentity:
    """Which device a NIC entry is (item 6 of issue 18): its permanent address when it has one (any boot);
    else its address and ifindex, which hold only in the boot `boot_id` (a software device gets new ones
    each time it is made)."""

    perm_mac: Optional[str] = None
    mac: Optional[str] = None
    ifindex: Optional[int] = None
    boot_id: Optional[str] = None

    def describe(self) -> str:
        if self.perm_mac:
            return f"permanent address {self.perm_mac}"
        return f"address {self.mac or 'none'}, ifindex {self.ifindex} (no permanent address)"


@dataclass
class SizingRecord:
    """A path-sized apply: the buffer ceiling it used, and the arithmetic in one line (for verify and humans)."""
    ceiling_bytes: int
    summary: str


MAX_CEILING = 2**31 - 1  # the kernel's int


@dataclass
class State:
    profile: Optional[str] = None  # the profile applied last, None when only offloads/queues were changed
    complete: bool = True  # False while a run is in progress (or was killed)
    sysctl: Dict[str, SysctlBackup] = field(default_factory=dict)
    persist_original: Optional[str] = None  # the persist file's content before guestcheck, None if absent
    persist_recorded: bool = False  # whether persist_original was taken (the file may have been absent)
    persist_mode: Optional[int] = None  # its permission bits then (None: absent, or not recorded: 0644)
    features: Dict[str, Dict[str, bool]] = field(default_factory=dict)  # iface -> changeable feature -> on
    channels: Dict[str, Dict[str, int]] = field(default_factory=dict)  # iface -> rx/tx/other/combined
    boot_id: Optional[str] = None  # the boot in which `features`/`channels` were changed (a reboot undoes them)
    rings: Dict[str, Dict[str, int]] = field(default_factory=dict)  # iface -> rx/tx/rx_mini/rx_jumbo originals
    applied: Dict[str, Dict[str, Dict[str, Any]]] = field(default_factory=dict)  # unit -> iface -> what was set
    links: Dict[str, LinkRecord] = field(default_factory=dict)  # iface -> what was persisted for it
    applying: Optional[str] = None  # the profile an unfinished run was applying (with complete False)
    sizing: Optional[SizingRecord] = None  # set when `profile` was applied sized to a path (--rate)
    nics: Dict[str, NicIdentity] = field(default_factory=dict)  # iface (name when tuned) -> which device it is
    rps: Dict[str, Dict[str, str]] = field(default_factory=dict)  # iface -> rx queue -> original rps_cpus mask

    def empty(self) -> bool:
        return not (self.sysctl or self.persist_recorded or self.features or self.channels or self.rings
                    or self.rps or self.links)

    def to_text(self) -> str:
        """Format /2: file contents (kept in memory as text with surrogate escapes, byte for byte) as base64."""
        data = asdict(self)
        data["persist_original"] = _b64(self.persist_original)
        for record in data["links"].values():
            record["original"], record["rule_original"] = _b64(record["original"]), _b64(record["rule_original"])
        return json.dumps({"schema": STATE_SCHEMA, **data}, indent=2, sort_keys=True) + "\n"

    def copy(self) -> State:
        return state_from_text(self.to_text(), "<copy>")


def _b64(content: Optional[str]) -> Optional[str]:
    return None if content is None else base64.b64encode(encode(content)).decode("ascii")


class JournalTooLarge(TuneError):
    """The journal a run would write is larger than `rollback` reads: refused before anything changes."""


def check_fits(state: State, slack: int = 0, consequence: str = "nothing was changed") -> None:
    """Refuse (JournalTooLarge) a journal that `load_state` would refuse: `slack` bytes are kept for what a
    run adds after its first write (the values it read back)."""
    size = len(state.to_text().encode("ascii", "backslashreplace"))
    if size + slack > MAX_JOURNAL_BYTES:
        raise JournalTooLarge(f"the journal would be {size + slack} bytes, more than the {MAX_JOURNAL_BYTES} "
                              f"(4 MiB) that `rollback` reads (the files guestcheck must keep to restore them are "
                              f"too large): {consequence}")


class _Damaged(ValueError):
    """One thing wrong in a journal, said in words (the caller adds the path)."""


# a journal holds strings, booleans and small whole numbers (modes, counts, sizes): nothing else is read
_JOURNAL_JSON = decoder(12, floats=False, constant="a value a journal holds")


def state_from_text(text: str, path: str) -> State:
    """The journal, every value checked for type and range: a damaged one is a TuneError, never a crash."""
    damaged = f"{path} is damaged"
    try:
        data = loads(text, _JOURNAL_JSON)
    except JSONInputError as e:
        raise TuneError(f"{damaged}: {escape_control(str(e))}") from None
    if not isinstance(data, dict) or data.get("schema") not in (STATE_SCHEMA, OLD_SCHEMA):
        raise TuneError(f"{damaged}: not a {STATE_SCHEMA} document")
    try:
        return _state(data, old=data["schema"] == OLD_SCHEMA)
    except _Damaged as e:
        raise TuneError(f"{damaged}: {e}") from None
    except BadKey as e:
        raise TuneError(f"{damaged}: {e}") from None


def _state(data: Dict[str, Any], old: bool = False) -> State:
    sysctl = {}
    for key, backup in _dict(data, "sysctl").items():
        check_syntax(key)
        if not isinstance(backup, dict):
            raise _Damaged(f"sysctl {key}: not an object")
        sysctl[key] = SysctlBackup(_value(backup.get("original"), f"{key} original"),
                                   _value(backup.get("applied"), f"{key} applied"))
    features = {_ifname(i): {_feature(n): _bool(on, f"features {i} {n}") for n, on in _object(f, i).items()}
                for i, f in _dict(data, "features").items()}
    channels = {_ifname(i): {_channel_name(n): _count(c, f"channels {i} {n}") for n, c in _object(ch, i).items()}
                for i, ch in _dict(data, "channels").items()}
    persist_original = _file_text(data.get("persist_original"), "persist_original", old)
    mode = data.get("persist_mode")
    if mode is not None and (type(mode) is not int or not 0 <= mode <= 0o777):
        raise _Damaged(f"persist_mode {_show(mode)}: not a file mode")
    boot = data.get("boot_id")
    if boot is not None and (not isinstance(boot, str) or not _BOOT_ID.fullmatch(boot)):
        raise _Damaged(f"boot_id {_show(boot)}: not a boot id")
    profile = _name(data.get("profile"), "profile")
    applying = _name(data.get("applying"), "applying")
    rings = {_ifname(i): {_ring_name(n): _ring(c, f"rings {i} {n}") for n, c in _object(r, i).items()}
             for i, r in _dict(data, "rings").items()}
    rps = {_ifname(i): {_rx_queue(n): _mask(m, f"rps {i} {n}") for n, m in _object(r, i).items()}
           for i, r in _dict(data, "rps").items()}
    applied: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for unit, per_iface in _dict(data, "applied").items():
        check = _APPLIED.get(unit)
        if check is None:
            raise _Damaged(f"applied: {_show(unit)} is not a NIC unit")
        applied[unit] = {_ifname(i): {n: check(n, v, f"applied {unit} {i}") for n, v in _object(values, i).items()}
                         for i, values in _object(per_iface, unit).items()}
    links = {_ifname(i): _link(_object(rec, i), i, old) for i, rec in _dict(data, "links").items()}
    nics = {} if old else {_ifname(i): _identity(_object(v, i), i) for i, v in _dict(data, "nics").items()}
    return State(nics=nics, profile=profile, applying=applying, sizing=_sizing(data.get("sizing")),
                 complete=_bool(data.get("complete", True), "complete"), sysctl=sysctl,
                 persist_original=persist_original,
                 persist_recorded=_bool(data.get("persist_recorded", False), "persist_recorded"),
                 features=features, channels=channels, persist_mode=mode, boot_id=boot, rings=rings, rps=rps,
                 applied=applied, links=links)


def _ring_name(name: str) -> str:
    if name not in RING_NAMES:
        raise _Damaged(f"{_show(name)} is not a ring kind ({', '.join(RING_NAMES)})")
    return name


def _ring(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_RING:
        raise _Damaged(f"{where}: {_show(value)} is not a ring size (0-{MAX_RING})")
    return value


def _rx_queue(name: str) -> str:
    if not RX_QUEUE.fullmatch(name):
        raise _Damaged(f"{_show(name)} is not a receive queue (rx-N)")
    return name


def _mask(value: object, where: str) -> str:
    if not isinstance(value, str) or not RPS_MASK.fullmatch(value):
        raise _Damaged(f"{where}: {_show(value)} is not a CPU mask (hex, in groups of 8 digits)")
    return value


_APPLIED = {
    "features": lambda n, v, w: _bool(v, f"{w} {_feature(n)}"),
    "channels": lambda n, v, w: _count(v, f"{w} {_channel_name(n)}"),
    "rings": lambda n, v, w: _ring(v, f"{w} {_ring_name(n)}"),
    "rps": lambda n, v, w: _mask(v, f"{w} {_rx_queue(n)}"),
}


def _file_text(value: object, where: str, old: bool) -> Optional[str]:
    """A kept file's content (its bytes, as text with surrogate escapes): base64 in /2, that text in /1."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > (MAX_PERSIST_BYTES if old else MAX_B64):
        raise _Damaged(f"{where}: not the content of a file")
    if old:
        try:
            encode(value)
        except UnicodeEncodeError:
            raise _Damaged(f"{where}: not the content of a file") from None
        return value
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _Damaged(f"{where}: not base64") from None
    if len(data) > MAX_PERSIST_BYTES:
        raise _Damaged(f"{where}: not the content of a file")
    return data.decode("utf-8", "surrogateescape")


def _identity(value: Dict[str, Any], iface: str) -> NicIdentity:
    where = f"nics {iface}"
    unknown = set(value) - {"perm_mac", "mac", "ifindex", "boot_id"}
    if unknown:
        raise _Damaged(f"{where}: {_show(sorted(unknown)[0])} is not part of a device's identity")
    perm, mac, ifindex, boot = (value.get(k) for k in ("perm_mac", "mac", "ifindex", "boot_id"))
    for name, address in (("perm_mac", perm), ("mac", mac)):
        if address is not None and (not isinstance(address, str) or not HW_ADDRESS.fullmatch(address)):
            raise _Damaged(f"{where} {name}: {_show(address)} is not a hardware address")
    if ifindex is not None and (type(ifindex) is not int or not 1 <= ifindex <= MAX_IFINDEX):
        raise _Damaged(f"{where} ifindex: {_show(ifindex)} is not an interface index")
    if boot is not None and (not isinstance(boot, str) or not _BOOT_ID.fullmatch(boot)):
        raise _Damaged(f"{where} boot_id: {_show(boot)} is not a boot id")
    return NicIdentity(perm, mac, ifindex, boot)


def _mode(value: object, where: str) -> Optional[int]:
    if value is not None and (type(value) is not int or not 0 <= value <= 0o777):
        raise _Damaged(f"{where} {_show(value)}: not a file mode")
    return value  # type: ignore[return-value]


def _lines(value: object, where: str) -> List[str]:
    if not isinstance(value, list) or len(value) > 64:
        raise _Damaged(f"{where}: not a list of settings")
    for line in value:
        if not isinstance(line, str) or not LINK_LINE.fullmatch(line):
            raise _Damaged(f"{where}: {_show(line)} is not a one-line Key=value setting")
    return list(value)


def _link(rec: Dict[str, Any], iface: str, old: bool) -> LinkRecord:
    where = f"links {iface}"
    name = rec.get("name")
    if not isinstance(name, str) or not LINK_NAME.fullmatch(name) or not name.endswith(".link"):
        raise _Damaged(f"{where}: {_show(name)} is not a guestcheck .link file name")
    rule = rec.get("rule_name")
    if rule is not None and (not isinstance(rule, str) or not LINK_NAME.fullmatch(rule) or not rule.endswith(".rules")):
        raise _Damaged(f"{where}: {_show(rule)} is not a guestcheck udev rule name")
    settings = {}
    for key, value in _object(rec.get("settings", {}), f"{where} settings").items():
        if key not in LINK_SETTINGS or not isinstance(value, str) or not re.fullmatch(r"yes|no|[0-9]{1,7}", value):
            raise _Damaged(f"{where} settings: {_show(key)} = {_show(value)} is not a .link setting")
        settings[key] = value
    rule_args = {}
    for key, value in _object(rec.get("rule_args", {}), f"{where} rule_args").items():
        if isinstance(key, str) and key.startswith("R:"):  # an RPS mask, written as ATTR{queues/rx-N/rps_cpus}
            _rx_queue(key[2:])
            rule_args[key] = _mask(value, f"{where} rule_args {key}")
            continue
        if not isinstance(value, str) or not _RULE_ARG.fullmatch(key) or not re.fullmatch(r"on|off|[0-9]{1,7}", value):
            raise _Damaged(f"{where} rule_args: {_show(key)} = {_show(value)} is not an ethtool setting")
        rule_args[key] = value
    match = _lines(rec.get("match", []), f"{where} match")
    for line in match:
        problem = match_problem(line)
        if problem:
            raise _Damaged(f"{where} match: {problem}")
    if not match:
        raise _Damaged(f"{where} match: empty (a .link file without [Match] lines matches nothing)")
    return LinkRecord(name=name, match=match,
                      carried=_lines(rec.get("carried", []), f"{where} carried"), settings=settings,
                      original=_file_text(rec.get("original"), f"{where} original", old),
                      mode=_mode(rec.get("mode"), f"{where} mode"), rule_name=rule, rule_args=rule_args,
                      rule_original=_file_text(rec.get("rule_original"), f"{where} rule_original", old),
                      rule_mode=_mode(rec.get("rule_mode"), f"{where} rule_mode"),
                      rule_recorded=_bool(rec.get("rule_recorded", False), f"{where} rule_recorded"))


def _name(value: object, field: str) -> Optional[str]:
    if value is not None and (not isinstance(value, str) or len(value) > 255):  # any name: shown escaped
        raise _Damaged(f"{field} {_show(value)}: not a profile name")
    return value


def _sizing(value: object) -> Optional[SizingRecord]:
    if value is None:
        return None
    record = _object(value, "sizing")
    if set(record) != {"ceiling_bytes", "summary"}:
        raise _Damaged("sizing: expected ceiling_bytes and summary")
    ceiling, summary = record["ceiling_bytes"], record["summary"]
    if type(ceiling) is not int or not 1 <= ceiling <= MAX_CEILING:
        raise _Damaged(f"sizing ceiling_bytes {_show(ceiling)}: not a buffer size (1-{MAX_CEILING})")
    return SizingRecord(ceiling, _value(summary, "sizing summary"))


def _dict(data: Dict[str, Any], name: str) -> Dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise _Damaged(f"{name}: not an object")
    return value


def _object(value: object, where: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise _Damaged(f"{_show(where)}: not an object")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Damaged(f"{where}: {_show(value)} is not true or false")
    return value


def _value(value: object, where: str) -> str:
    """A sysctl value: one line of printable text, as /proc/sys gives it."""
    if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH or escape_control(value) != value:
        raise _Damaged(f"{_show(where)}: {_show(value)} is not a sysctl value")
    return value


def _ifname(name: str) -> str:
    if not valid_ifname(name):
        raise _Damaged(f"{_show(name)} is not an interface name")
    return name


def _feature(name: str) -> str:
    if not _FEATURE.fullmatch(name):
        raise _Damaged(f"{_show(name)} is not an offload feature name")
    return name


def _channel_name(name: str) -> str:
    if name not in CHANNEL_NAMES:
        raise _Damaged(f"{_show(name)} is not a channel kind ({', '.join(CHANNEL_NAMES)})")
    return name


def _count(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_CHANNELS:
        raise _Damaged(f"{where}: {_show(value)} is not a channel count (0-{MAX_CHANNELS})")
    return value


def _show(value: object) -> str:
    shown = escape_control(repr(value))
    return shown if len(shown) <= 60 else shown[:57] + "..."


def load_state(roots: Roots) -> Optional[State]:
    """The journal, or None when guestcheck has changed nothing on this machine. Not followed through a link,
    never blocks on a FIFO, never read past MAX_JOURNAL_BYTES."""
    path = state_path(roots)
    try:
        data = read_regular(path, MAX_JOURNAL_BYTES, nofollow=True)
    except FileNotFoundError:
        return None
    except OSError as e:
        why = "a symlink" if e.errno == errno.ELOOP else e.strerror
        raise TuneError(f"cannot read {path}: {why}") from None
    except TooLarge:
        raise TuneError(f"{path} is damaged: larger than {MAX_JOURNAL_BYTES // 1024 // 1024} MiB") from None
    except ValueError:
        raise TuneError(f"{path} is damaged: not a regular file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TuneError(f"{path} is damaged: not UTF-8 text") from None
    return state_from_text(text, path)


def journal_text(roots: Roots) -> Optional[str]:
    """The journal as it is on disk (None: absent or unreadable), read as `load_state` reads it (no symlink
    followed, no FIFO waited on, bounded): to tell whether a run that was cut off had begun."""
    try:
        return read_regular(state_path(roots), MAX_JOURNAL_BYTES, nofollow=True).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def save_state(roots: Roots, state: Optional[State]) -> None:
    """Write the journal (atomically), or remove it when it holds nothing. Never one that `rollback` could not
    read: callers check that with check_fits before they change anything, this is the last guard."""
    if state is None or state.empty():
        remove(state_path(roots))
    else:
        check_fits(state, consequence="not written")
        write_atomic(state_path(roots), state.to_text(), mode=0o600)


def _open_lock(path: str) -> int:
    """The lock file, a regular file: never followed through a link, never waited on (a FIFO)."""
    not_regular = f"the lock {path} is not a regular file: remove it and run again; nothing was changed"
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise TuneError(not_regular)  # refused before it is opened: opening a device may do something
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise TuneError(not_regular) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TuneError(not_regular)
    return fd


@contextlib.contextmanager
def locked(roots: Roots) -> Iterator[None]:
    """One tuner at a time on a machine (per journal); taken before the journal is read."""
    path = lock_path(roots)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TuneError(f"another `guestcheck tune` is running (lock {path})") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def io_errors(consequence: str) -> Iterator[None]:
    """A file the tuner could not write (read-only /etc, full disk) becomes one clear line."""
    try:
        yield
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise TuneError(f"cannot write{where}: {os_error(e)}; {consequence}") from None
