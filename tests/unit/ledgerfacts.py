"""Facts with a loss ledger, for the unit tests of the ledger's checks and renderers."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from guestcheck.facts import CounterRate, Facts, Ledger, Listener, Memory, Qdisc
from tests.unit.test_ok_states import base

SETTINGS = {"net.core.rmem_default": "212992", "net.core.rmem_max": "212992", "net.core.wmem_default": "212992",
            "net.core.wmem_max": "212992", "net.core.somaxconn": "4096", "net.ipv4.tcp_max_syn_backlog": "512",
            "net.ipv4.tcp_mem": "22000 29000 44000", "net.ipv4.conf.all.rp_filter": "0",
            "net.ipv4.conf.default.rp_filter": "1", "net.ipv4.conf.eth0.rp_filter": "1"}


def rate(total: int, rise: Optional[int], seconds: float = 1.0) -> CounterRate:
    return CounterRate(total, rise, None if rise is None else round(rise / seconds, 3))


def qdisc(kind: str = "tbf", device: str = "eth0", *, drops: Tuple[int, Optional[int]] = (0, 0),
          overlimits: Tuple[int, Optional[int]] = (0, 0), rate_bytes: Optional[int] = 12_500_000,
          limit: Optional[int] = 256_000, unit: str = "bytes", backlog: int = 0, handle: str = "8001:",
          parent: str = "root", burst: Optional[int] = 32_768, ingress_of: Optional[List[str]] = None,
          is_class: bool = False) -> Qdisc:
    return Qdisc(device=device, kind=kind, handle=handle, parent=parent, is_class=is_class,
                 rate_bytes_per_s=rate_bytes, limit=limit, limit_unit=unit, burst_bytes=burst,
                 counters={"drops": rate(*drops), "overlimits": rate(*overlimits), "requeues": rate(0, 0),
                           "packets": rate(1000, 100), "bytes": rate(1_500_000, 150_000)},
                 backlog_bytes=backlog, backlog_bytes_peak=backlog, ingress_of=ingress_of or [])


def ledger_facts(counters: Optional[Dict[str, Tuple[int, Optional[int]]]] = None, *,
                 qdiscs: Optional[List[Qdisc]] = None, settings: Optional[Dict[str, str]] = None,
                 listeners: Optional[List[Listener]] = None, fq_codel: bool = False) -> Facts:
    """The healthy base machine (tests/unit/test_ok_states.py) with a sampled ledger of one second."""
    f = base()
    f.ledger = Ledger(netns="net:[4026531840]", netns_is_initial=True, sampled=True, seconds=1.0,
                      qdiscs=qdiscs or [], counters={k: rate(*v) for k, v in (counters or {}).items()},
                      listeners=listeners or [], listeners_total=len(listeners or []),
                      settings=dict(SETTINGS if settings is None else settings),
                      qdisc_kinds={"fq_codel": fq_codel, "fq": fq_codel})
    return f


def guaranteed_memory() -> Memory:
    """8 GiB, all of it the VM's: no balloon, no overcommit (judge/memory.py says guaranteed)."""
    return Memory(total_bytes=8 << 30, available_bytes=6 << 30, firmware_bytes=8 << 30, swap_total_bytes=0,
                  swap_free_bytes=0, committed_bytes=1 << 30, commit_limit_bytes=4 << 30, overcommit_memory=0,
                  overcommit_ratio=50, balloon_bytes=0, vmstat_balloon_inflate=0, vmstat_balloon_deflate=0)
