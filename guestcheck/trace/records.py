"""What a drop-reason trace saw, as plain records: the observation the Facts will carry (`Facts.drops`).

Standard library only, written in facts.py's style (mutable dataclasses, JSON-friendly fields, defaults for
"not seen"), so the lead can move `DropRow` and `DropReasons` into guestcheck/facts.py unchanged and leave an
import here (or drop this module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

NOISE_REASONS = ("NOT_SPECIFIED",)  # the kernel's "no reason given": kept in the data, never a finding by itself


@dataclass
class DropRow:
    """Packets freed with one reason, of one protocol, at one kernel function, during the window."""

    reason: str  # the kernel's name, as printed ("NO_SOCKET"); an unknown value as printed ("0x10002")
    protocol: str  # the ethertype: "ipv4", "ipv6", "arp" or "other 0x88cc"
    location: str  # the function that freed it, offset dropped ("__udp4_lib_rcv", "nft_do_chain [nf_tables]");
    # "?" when the kernel prints the location as a hashed pointer (before %pS, e.g. 6.1)
    count: int
    known: bool = True  # the reason is in this kernel's own list (the tracepoint's format file)
    noise: bool = False  # NOT_SPECIFIED: counted, never reported on its own


@dataclass
class DropReasons:
    """The skb:kfree_skb tracepoint sampled over a window, in a trace instance of our own.

    `machine_wide` is always true: the tracepoint sees every network namespace of the kernel, so these drops are
    not this namespace's alone."""

    available: bool = False
    reason_unavailable: str = ""  # one line, when not available ("kernel 5.10 is older than 5.17: ...")
    seconds: float = 0.0
    machine_wide: bool = True
    capped: bool = False  # more events than cap_per_second in some second: the excess is in events_not_counted
    cap_per_second: int = 0
    events_seen: int = 0  # event lines read from the instance's trace_pipe
    events_counted: int = 0  # of those, parsed into rows
    events_not_counted: int = 0  # read past the per-second cap, not parsed
    events_lost: int = 0  # the kernel's own "[LOST N EVENTS]": the ring buffer overflowed before we read
    lines_malformed: int = 0  # lines that were not a kfree_skb event of a known shape (too long, cut, unknown)
    location_symbolic: bool = True  # false where the kernel prints `location` as a hashed pointer (%p)
    reasons_known: int = 0  # how many reasons this kernel's format file names
    rows: List[DropRow] = field(default_factory=list)  # by count, largest first

    def by_reason(self) -> dict:
        """reason -> packets, over all protocols and locations (for a ledger row or a metric)."""
        out: dict = {}
        for row in self.rows:
            out[row.reason] = out.get(row.reason, 0) + row.count
        return out
