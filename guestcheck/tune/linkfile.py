"""NIC settings that survive a reboot: a systemd .link file per interface, applied by udev's net_setup_link.

How udev picks a .link file (systemd.link(5), systemd 252 as in Debian 12):
- *.link files from /etc/systemd/network, /run/systemd/network, /usr/local/lib/systemd/network and
  /usr/lib/systemd/network (/lib/systemd/network on split-/usr) are sorted by file name across all of them;
  a same-named file in an earlier directory hides the later ones; an empty file or a link to /dev/null masks it.
- The FIRST file whose [Match] matches the device is applied, and only that one: a file that matches an
  interface replaces the distribution's 99-default.link for it, naming policy included. So ours carries over
  the [Link] lines of the file that applies today (NamePolicy=, AlternativeNamesPolicy=, MACAddressPolicy=...)
  and the interface keeps its name; when that file has no naming line at all, Name= is set to today's name.
- Ours is 50-guestcheck-IFACE.link: before Debian's 73-usb-net-by-mac.link and 99-default.link (which it
  replaces for this one interface), after the low-numbered files that an admin, netplan or cloud-init write
  (10-netplan-*, 10-*.link). When one of those matches, it wins: guestcheck does not take over a naming
  decision someone made on purpose, and writes a udev rule that runs ethtool instead (see `rule_text`).
- Match: PermanentMACAddress= when the device has a permanent hardware address (a real or emulated NIC: it
  survives a rename and a changed MAC); OriginalName= (the kernel's name) for software devices (veth) whose
  MAC is random at each creation and whose name their creator chose; MACAddress= (the current address) only
  for a software device renamed since it appeared (a veth moved into a namespace), whose kernel name is gone.
  MACAddress= is the last resort: cloud-init and MACAddressPolicy= may change the current address.
- systemd 252 has no .link setting for scatter-gather (tx-scatter-gather): that one goes into a udev rule
  that runs `ethtool -K` once net_setup_link is done; TSO and GSO requested by the .link file become active
  as soon as it is on (the kernel keeps them requested).
- Nor has any .link file a setting for Receive Packet Steering: `tune rps` always persists through that rule,
  which writes each receive queue's rps_cpus (ATTR{queues/rx-N/rps_cpus}="MASK") as the device is added.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from guestcheck.collect.fs import cat, cat_int, link_name
from guestcheck.ini import ini_sections
from guestcheck.names import FILE_SAFE_IFNAME, file_safe_ifname
from guestcheck.regularfile import read_regular
from guestcheck.roots import Roots
from guestcheck.text import escape_control, is_plain
from guestcheck.tune import TuneError, confdirs
from guestcheck.uevent import parse_uevent, udev_db_properties

OUR_PREFIX = "50-guestcheck-"
RULE_PREFIX = "90-guestcheck-"
ETHTOOL = "/usr/sbin/ethtool"
HW_ADDRESS = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5,31}")  # as sysfs and `ethtool -P` show it
# the [Match] lines guestcheck writes, and what their values may hold: no glob, quote, space or `%`/`$`, so a
# value means the same in a .link file and inside a udev rule's "..." (where it is a glob and substituted)
MATCH_VALUES = {"PermanentMACAddress": HW_ADDRESS, "MACAddress": HW_ADDRESS, "OriginalName": FILE_SAFE_IFNAME}
# an RPS mask as the kernel reads and writes it: 32-bit hex groups, comma-separated (at most 65536 CPUs); nothing
# in it can end udev's "..."
RPS_MASK = re.compile(r"[0-9a-f]{1,8}(,[0-9a-f]{8}){0,2047}")
# a [Link] line carried over from the file ours replaces (and kept in the journal): one printable Key=value
LINK_LINE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}=[\x20-\x7e]{0,512}")
RX_QUEUE = re.compile(r"rx-[0-9]{1,5}")  # a receive queue's directory under /sys/class/net/IFACE/queues
NAMING = ("NamePolicy", "Name")
MAX_LINK_BYTES = 64 * 1024

# [Link] settings by what guestcheck changes (systemd 252 names)
FEATURE_SETTING = {
    "rx-checksum": "ReceiveChecksumOffload",
    "tx-checksum-ip-generic": "TransmitChecksumOffload", "tx-checksum-ipv4": "TransmitChecksumOffload",
    "tx-checksum-ipv6": "TransmitChecksumOffload",
    "tx-tcp-segmentation": "TCPSegmentationOffload", "tx-tcp6-segmentation": "TCP6SegmentationOffload",
    "tx-generic-segmentation": "GenericSegmentationOffload",
    "rx-gro": "GenericReceiveOffload",
}
CHANNEL_SETTING = {"rx": "RxChannels", "tx": "TxChannels", "other": "OtherChannels", "combined": "CombinedChannels"}
RING_SETTING = {"rx": "RxBufferSize", "tx": "TxBufferSize"}


def link_dirs(roots: Roots) -> List[str]:
    """In precedence order: a file here hides same-named files in the directories after it."""
    return confdirs.search_dirs(roots, "systemd/network")


def our_dir(roots: Roots) -> str:
    return os.path.join(roots.etc, "systemd/network")


def rules_dir(roots: Roots) -> str:
    return os.path.join(roots.etc, "udev/rules.d")


def file_names(ifname: str) -> Tuple[str, str]:
    """(the .link file's name, the udev rule's name) for an interface; TuneError for a name unfit for a file."""
    if not file_safe_ifname(ifname):
        raise TuneError(f"cannot persist settings for {escape_control(repr(ifname))}: the name has characters "
                        "that do not belong in a file name; use --no-persist")
    return f"{OUR_PREFIX}{ifname}.link", f"{RULE_PREFIX}{ifname}.rules"


def safe_path(directory: str, name: str, root: str) -> str:
    """directory/name, proved to stay under `root` once every link on the way is resolved."""
    path = os.path.join(directory, name)
    base = os.path.realpath(root).rstrip("/") + "/"
    if not os.path.realpath(os.path.dirname(path)).startswith(base) or os.sep in name:
        raise TuneError(f"{path} resolves outside {root}: not written")
    return path


def _masked(path: str) -> bool:
    try:
        return os.path.realpath(path) == os.devnull or os.path.getsize(path) == 0
    except OSError:
        return True


def boot_link_files(roots: Roots) -> List[Tuple[str, str]]:
    """(name, path) of every .link file udev reads, in the order it tries them."""
    chosen = confdirs.first_by_name(link_dirs(roots), ".link")
    return [(n, chosen[n]) for n in sorted(chosen) if not _masked(chosen[n])]


def parse_link(text: str) -> Dict[str, List[Tuple[str, str]]]:
    """Sections of a .link file: [(key, value)] in order; comments and broken lines skipped as systemd does."""
    return ini_sections(text)


def read_link(path: str) -> Optional[Dict[str, List[Tuple[str, str]]]]:
    try:  # a FIFO or a huge file among the .link files must not hang or flood tune
        data = read_regular(path, MAX_LINK_BYTES)
    except (OSError, ValueError):
        return None
    return parse_link(data.decode("utf-8", "replace"))


def match_problem(line: object) -> Optional[str]:
    """Why `line` is not a [Match] line guestcheck writes, or None. The journal's lines (which could have been
    edited) go through here before they reach a .link file or a udev rule."""
    shown = escape_control(repr(line))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if not isinstance(line, str):
        return f"{shown} is not a [Match] line"
    key, sep, value = line.partition("=")
    pattern = MATCH_VALUES.get(key)
    if not sep or pattern is None:
        return f"{shown} is not a [Match] line guestcheck writes ({'=, '.join(MATCH_VALUES)}=)"
    if not pattern.fullmatch(value) or not is_plain(value) or value in (".", ".."):
        what = "a hardware address" if pattern is HW_ADDRESS else "an interface name (letters, digits, _.@+-)"
        return f"{shown}: the value of {key}= is not {what}"
    return None


def check_match(match: List[str]) -> None:
    """TuneError unless every line is one match_problem() accepts (and there is one)."""
    if not match:
        raise TuneError("no [Match] line: a .link file without one matches nothing")
    for line in match:
        problem = match_problem(line)
        if problem:
            raise TuneError(f"refusing to write {problem}")


@dataclass
class Device:
    """What a [Match] section is judged on."""

    name: str
    mac: Optional[str] = None
    perm_mac: Optional[str] = None  # None: no permanent address (software devices)
    driver: Optional[str] = None
    type: Optional[str] = None  # "ether", "wlan"...
    original_name: Optional[str] = None  # the kernel's name, None when renamed since
    udev: Dict[str, str] = field(default_factory=dict)  # udev's database entry (ID_PATH, ID_NET_LINK_FILE...)

    def match_lines(self) -> List[str]:
        if self.perm_mac:
            return [f"PermanentMACAddress={self.perm_mac}"]
        if self.original_name:
            return [f"OriginalName={self.original_name}"]
        if self.mac and re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", self.mac):
            return [f"MACAddress={self.mac.lower()}"]  # a renamed software device: its address while it lives
        raise TuneError(f"{self.name} has no permanent hardware address, no address and was renamed since it "
                        "appeared: no stable way to match it in a .link file; use --no-persist")


def udev_entry(roots: Roots, ifindex: Optional[int]) -> Dict[str, str]:
    """The E: properties udev recorded for the interface at its last add event (/run/udev/data/nIFINDEX)."""
    if ifindex is None:
        return {}
    text = cat(os.path.join(roots.run, "udev/data", f"n{ifindex}")) or ""
    return dict(udev_db_properties(text))


def device(roots: Roots, ifname: str, perm_mac: Optional[str]) -> Device:
    net = os.path.join(roots.sys, "class/net", ifname)
    devtype = parse_uevent(cat(os.path.join(net, "uevent"))).get("DEVTYPE")
    link_type = cat_int(os.path.join(net, "type"))
    renamed = cat_int(os.path.join(net, "name_assign_type")) == 4  # NET_NAME_RENAMED
    zero = perm_mac is None or perm_mac.strip("0:") == ""
    return Device(name=ifname, mac=cat(os.path.join(net, "address")), perm_mac=None if zero else perm_mac,
                  driver=link_name(os.path.join(net, "device/driver")), original_name=None if renamed else ifname,
                  type=devtype or {1: "ether", 772: "loopback"}.get(link_type or -1),
                  udev=udev_entry(roots, cat_int(os.path.join(net, "ifindex"))))


def _globs(value: str, have: Optional[str], exact: bool = False) -> Optional[bool]:
    words = value.split()
    negate = bool(words) and words[0].startswith("!")
    if negate:
        words[0] = words[0][1:]
    if have is None:
        return (not negate) if words and all(w == "*" for w in words) else None
    hit = any((w.lower() == have.lower()) if exact else fnmatch.fnmatchcase(have, w) for w in words if w)
    return hit != negate


def matches(match: List[Tuple[str, str]], dev: Device) -> Optional[bool]:
    """Whether a [Match] section matches the device: True, False, or None when it tests what guestcheck cannot
    see (Property=, Host=, Kind=...). An empty [Match] matches nothing: systemd ignores such a file."""
    if not match:
        return False
    unknown = False
    for key, value in match:
        if not value:
            continue  # an empty assignment resets the list
        have = {"OriginalName": (dev.original_name, False), "MACAddress": (dev.mac, True),
                "PermanentMACAddress": (dev.perm_mac, True), "Driver": (dev.driver, False),
                "Type": (dev.type, False), "Path": (dev.udev.get("ID_PATH"), False)}.get(key)
        verdict = None if have is None else _globs(value, have[0], exact=have[1])
        if verdict is False:
            return False
        unknown = unknown or verdict is None
    return None if unknown else True


@dataclass
class Applying:
    """The .link file that applies to a device: where it is and its [Link] lines."""

    name: str
    path: str
    link: List[Tuple[str, str]]
    how: str  # "udev" (its database says so) or "matched" (guestcheck judged the [Match] sections)


def applying_now(roots: Roots, dev: Device, skip: str = "") -> Tuple[Optional[Applying], List[str]]:
    """The file that applies to `dev` (leaving out our own, `skip`), and notes on files that may win instead."""
    notes: List[str] = []
    recorded = dev.udev.get("ID_NET_LINK_FILE", "")
    files = boot_link_files(roots)
    if recorded and os.path.basename(recorded) != skip:
        for name, path in files:
            if name == os.path.basename(recorded):
                sections = read_link(path) or {}
                return Applying(name, path, sections.get("Link", []), "udev"), notes
    for name, path in files:
        if name == skip:
            continue
        sections = read_link(path)
        if sections is None:
            continue
        verdict = matches(sections.get("Match", []), dev)
        if verdict is True:
            return Applying(name, path, sections.get("Link", []), "matched"), notes
        if verdict is None:
            notes.append(f"{path} may match {dev.name} (it tests what guestcheck cannot see)")
    return None, notes


@dataclass
class LinkConflict:
    path: str
    certain: bool  # False: its [Match] tests what guestcheck cannot see

    def describe(self, ours: str) -> str:
        if self.certain:
            return f"{self.path} matches this interface and sorts before {ours}: it wins at boot"
        return f"{self.path} sorts before {ours} and may match this interface (it tests what guestcheck cannot see)"


def conflicts(roots: Roots, dev: Device, ours: str) -> List[LinkConflict]:
    """Other .link files that sort before ours and match the device: the first of them is applied, not ours."""
    out = []
    for name, path in boot_link_files(roots):
        if name >= ours:
            break
        sections = read_link(path)
        verdict = matches(sections.get("Match", []), dev) if sections is not None else False
        if verdict is not False:
            out.append(LinkConflict(path, verdict is True))
    return out


def carried_lines(applying: Optional[Applying], ifname: str) -> List[str]:
    """The [Link] lines our file keeps from the one it replaces (one-line, printable), and Name= when that file
    had no naming line, so the interface keeps today's name."""
    lines = []
    for key, value in applying.link if applying else []:
        line = f"{key}={value}"
        if key in _OURS or not LINK_LINE.fullmatch(line):
            continue
        lines.append(line)
    if not any(line.split("=", 1)[0] in NAMING for line in lines):
        lines.append(f"Name={ifname}")
    return lines


_OURS = set(FEATURE_SETTING.values()) | set(CHANNEL_SETTING.values()) | set(RING_SETTING.values())


def link_text(ifname: str, match: List[str], carried: List[str], settings: Dict[str, str],
              replaced: Optional[str]) -> str:
    check_match(match)
    lines = [f"# Written by `guestcheck tune` for {ifname}; `guestcheck tune rollback` removes it.",
             "# Applied by udev's net_setup_link when the interface appears. A .link file replaces the one that",
             "# applied before for this interface, so the naming lines of that file are carried over"
             + (f" ({replaced})." if replaced else "."), "", "[Match]", *match, "", "[Link]", *carried]
    lines += [f"{key}={settings[key]}" for key in sorted(settings)]
    return "\n".join(lines) + "\n"


def rule_match(match: List[str]) -> str:
    """The udev match for the .link file's first [Match] line; its value is checked (check_match) to need no
    escaping inside udev's double quotes: nothing in it can end the string or add a key."""
    check_match(match)
    key, _, value = match[0].partition("=")
    if key in ("PermanentMACAddress", "MACAddress"):  # udev has no attribute for the permanent one; the
        return f'ATTR{{address}}=="{value.lower()}"'  # address at the add event is that one
    return f'KERNEL=="{value}"'




def rps_assignment(key: str, value: str) -> str:
    """ATTR{queues/rx-N/rps_cpus}="MASK" for the rule arg "R:rx-N" -> MASK; TuneError for anything else (the
    journal's args are checked there too: nothing in them can end the string or add a key)."""
    queue = key[2:]
    if not key.startswith("R:") or not RX_QUEUE.fullmatch(queue) or not RPS_MASK.fullmatch(value):
        raise TuneError(f"refusing to write {escape_control(repr(key))} = {escape_control(repr(value))} "
                        "into a udev rule: not a receive queue and a CPU mask")
    return f'ATTR{{queues/{queue}/rps_cpus}}="{value}"'


def rule_expected(args: Dict[str, str]) -> List[str]:
    """What the rule must hold for each arg, as `rule_text` writes it (verify looks for each)."""
    return [rps_assignment(k, v) if k.startswith("R:") else f"{k[2:]} {v}" for k, v in sorted(args.items())]


def rule_text(ifname: str, match: List[str], args: Dict[str, str], why: str) -> str:
    """A udev rule that sets each receive queue's RPS mask as the device is added and runs ethtool once it is
    set up. args: "K:feature" -> on/off, "L:combined" -> N, "G:rx" -> N (ethtool -K/-L/-G), "R:rx-0" -> a
    CPU mask (ATTR{queues/rx-0/rps_cpus})."""
    keys = [rps_assignment(k, v) for k, v in sorted(args.items()) if k.startswith("R:")]
    for flag in "KLG":
        pairs = [f"{k[2:]} {v}" for k, v in sorted(args.items()) if k.startswith(f"{flag}:")]
        if pairs:
            keys.append(f'RUN+="{ETHTOOL} -{flag} $name {" ".join(pairs)}"')
    return "\n".join([f"# Written by `guestcheck tune` for {ifname}; `guestcheck tune rollback` removes it.",
                      f"# Why a udev rule: {why}.",
                      f'ACTION=="add", SUBSYSTEM=="net", {rule_match(match)}, {", ".join(keys)}']) + "\n"
