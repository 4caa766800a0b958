"""The skb:kfree_skb tracepoint as text: its `format` file (which reasons this kernel has) and its event lines.

The reason names come from the tracepoint's own format file, never from a table of ours, so a newer kernel's new
reasons just work. The kernel prints them through `__print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, ...)`
(6.0 and later; 5.17-5.19 the same table built from their EM() list). The numbers are those of the running
kernel (NOT_SPECIFIED is 1 up to 6.2, 2 from 6.3 when SKB_CONSUMED took 1); a value the table lacks, such as a
subsystem's reason (mac80211, openvswitch: high bits set), prints as hex and is kept by that printed name.

Event lines, as trace_pipe prints them:

    python3-15771 [001] ..s1. 13912.382537: kfree_skb: skbaddr=0000000057a3f9fe rx_sk=0000000000000000
        protocol=2048 location=__udp4_lib_rcv+0x4bc/0xd00 reason: NO_SOCKET     (6.18 here: rx_sk, %pS)
    <idle>-0 [000] ..s. 81.0: kfree_skb: skbaddr=000000008ae5c5c9 protocol=2048 location=000000003b0e14ab
        reason: NOT_SPECIFIED                                                      (6.1: %p, a hashed pointer)

Where the location is a hashed pointer the row's location is "?" (the format file says which: location=%p).

Lines are untrusted text (the task name before the event is whatever a process called itself): only the part
after the last "kfree_skb: " is read, a line longer than MAX_LINE is refused, and every field must match its
shape exactly, so what reaches a record is [A-Za-z0-9_.] and nothing a terminal would act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from guestcheck.quantities import maybe_int

MAX_LINE = 512  # a real event line is under 200 bytes; a module symbol and a long task name stay well under
MAX_FORMAT = 1 << 20  # the format file: about 4 KiB on 6.18 with 130 reasons
MARKER = "kfree_skb: "

_FIELD = re.compile(r"^\s*field:(?P<decl>[^;]{1,200});", re.M)
_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->reason\s*,(?P<table>.*)\)", re.S)
_PAIR = re.compile(r"\{\s*(?P<value>[A-Za-z0-9_]{1,64})\s*,\s*\"(?P<name>[A-Za-z0-9_]{1,64})\"\s*\}")
_PRINT_FMT = re.compile(r"^print fmt: \"(?P<fmt>[^\"]{0,500})\"", re.M)

_EVENT = re.compile(
    r"skbaddr=[0-9a-fx]{1,18}"
    r"(?: rx_sk=[0-9a-fx]{1,18})?"
    r" protocol=(?P<protocol>[0-9]{1,5})"
    r" location=(?P<location>[A-Za-z0-9_.$]{1,128})(?:\+0x[0-9a-f]{1,8}/0x[0-9a-f]{1,8})?"
    r"(?: \[(?P<module>[A-Za-z0-9_]{1,64})\])?"
    r" reason: (?P<reason>[A-Z0-9_]{1,64}|0x[0-9a-f]{1,16})$")
_LOST = re.compile(r"^CPU:[0-9]{1,5} \[LOST (?P<n>[0-9]{1,20}) EVENTS\]$")
_ADDRESS = re.compile(r"^(?:0x[0-9a-f]{1,16}|[0-9a-f]{8}|[0-9a-f]{16})$")  # hashed %p, or an address %pS could not name

ETHERTYPES = {0x0800: "ipv4", 0x86DD: "ipv6", 0x0806: "arp"}


@dataclass(frozen=True)
class KfreeSkbFormat:
    """What the running kernel's skb:kfree_skb tracepoint carries."""

    has_reason: bool  # a `reason` field: 5.17 and later
    reasons: Dict[str, Optional[int]] = field(default_factory=dict)  # name -> value (None when written as a name)
    location_symbolic: bool = False  # printed with %pS (function+off/len), not a hashed %p

    @property
    def known(self) -> frozenset:
        return frozenset(self.reasons)


def parse_format(text: str) -> KfreeSkbFormat:
    """The tracepoint's format file. ValueError (one line) when it is not a kfree_skb format at all."""
    if not re.search(r"^name: kfree_skb$", text, re.M):
        raise ValueError("not the format of skb:kfree_skb")
    names = {m.group("decl").split()[-1].lstrip("*") for m in _FIELD.finditer(text)}
    printed = _PRINT_FMT.search(text)
    fmt = printed.group("fmt") if printed else ""
    symbolic = _SYMBOLIC.search(text)
    reasons: Dict[str, Optional[int]] = {}
    if symbolic:
        for pair in _PAIR.finditer(symbolic.group("table")):
            raw = pair.group("value")
            value = maybe_int(raw, base=16) if raw[:2] in ("0x", "0X") else maybe_int(raw)
            reasons.setdefault(pair.group("name"), value)
    reasons.pop("MAX", None)  # the enum's end marker, never a drop
    return KfreeSkbFormat(has_reason="reason" in names, reasons=reasons, location_symbolic="location=%pS" in fmt)


def protocol_name(ethertype: int) -> str:
    """The ethertype as the rows name it."""
    return ETHERTYPES.get(ethertype, f"other 0x{ethertype:04x}")


@dataclass(frozen=True)
class Event:
    reason: str
    protocol: str
    location: str


def parse_line(line: str) -> Tuple[str, Optional[object]]:
    """("event", Event), ("lost", N) for the kernel's "CPU:n [LOST N EVENTS]", or ("malformed", None)."""
    if len(line) > MAX_LINE:
        return "malformed", None
    lost = _LOST.match(line)
    if lost:
        return "lost", int(lost.group("n"))
    at = line.rfind(MARKER)
    if at < 0:
        return "malformed", None
    match = _EVENT.fullmatch(line[at + len(MARKER):].rstrip("\r"))
    if not match:
        return "malformed", None
    ethertype = maybe_int(match.group("protocol"), high=0xFFFF)
    if ethertype is None:
        return "malformed", None
    location = match.group("location")
    if _ADDRESS.match(location):
        location = "?"
    elif match.group("module"):
        location = f"{location} [{match.group('module')}]"
    return "event", Event(match.group("reason"), protocol_name(ethertype), location)
