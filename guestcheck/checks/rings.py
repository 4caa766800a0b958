"""Receive rings: a ring that overflows while it could be larger, and one set far below what the device allows."""

from __future__ import annotations

from typing import Dict, List, Optional

from guestcheck.checks import PRESENT, FindingDoc, present_nics
from guestcheck.drivercounters import RING_OVERFLOW
from guestcheck.facts import CounterRate, Facts, Nic, NicCounters
from guestcheck.findings import Finding, Severity
from guestcheck.judge import Judged
from guestcheck.text import shell_word

SMALL_SHARE = 4  # a ring below a quarter of its maximum is "far below" it
# Drivers whose rx_dropped counts frames the device had no receive buffer for (ENA_Linux_Best_Practices.rst:
# "ENA device would drop packets if Rx ring becomes full"); elsewhere rx_dropped is mostly the stack's own.
RX_DROPPED_IS_RING = {"ena"}

FINDINGS = {
    "RING-RX-DROPS": FindingDoc(
        "Receive drops while the RX ring could be larger",
        "warning",
        "The NIC dropped frames because its receive ring was full (rx_missed_errors, rx_fifo_errors or "
        "rx_over_errors in /sys/class/net/IFACE/statistics; on ENA also rx_dropped, which the device reports "
        "when its ring is full), and the ring is smaller than the maximum the device allows (`ethtool -g`). "
        "A larger ring absorbs the bursts during which the vCPU that empties it is busy or descheduled by the "
        "host, at the cost of a little memory. A warning when the drops rose during the sample, info when "
        "they are in the counters since boot only. When the ring is already at its maximum the drops are "
        "reported as NIC-DROPS: then the vCPU cannot keep up, and spreading the work (queues, RPS) helps.",
        "ethtool -G IFACE rx MAX (MAX: the RX maximum `ethtool -g IFACE` shows). It lasts until the driver is "
        "reloaded or the machine reboots; keep it with the network configuration (systemd-networkd .link "
        "RxBufferSize=, NetworkManager ethtool.ring-rx) or `guestcheck tune rings IFACE`.",
        judged_on=PRESENT,
    ),
    "RING-RX-SMALL": FindingDoc(
        "The RX ring is far below its maximum",
        "info",
        f"The receive ring holds less than 1/{SMALL_SHARE} of the descriptors the device allows, and nothing "
        "dropped yet. Defaults are often small (e1000 256 of 4096, ENA 1024 of up to 16384); under bursty "
        "load a small ring overflows before the vCPU gets to it. Info only: raise it if drops appear "
        "(RING-RX-DROPS) or before a load test. A ring at a quarter of its maximum or more is not reported.",
        "ethtool -G IFACE rx MAX (MAX: the RX maximum `ethtool -g IFACE` shows), kept as for RING-RX-DROPS.",
        judged_on=PRESENT,
    ),
    "RING-RX-OK": FindingDoc(
        "The RX ring has no drops to blame on its size",
        "ok",
        "The receive ring is at a quarter of its maximum or more, or at its maximum, and did not overflow while "
        "it could have been larger. Said so that `doctor -v` shows the area was checked. (Drops with the ring at "
        "its maximum are NIC-DROPS.)",
        "Nothing to fix.",
        fix_on="",
        judged_on=PRESENT,
    ),
}


def ring_overflow(nic: Nic, counters: Optional[NicCounters]) -> Dict[str, CounterRate]:
    """The counters of this NIC that mean "the receive ring was full", with their readings."""
    if counters is None:
        return {}
    names = RING_OVERFLOW + (("rx_dropped",) if (nic.driver or "") in RX_DROPPED_IS_RING else ())
    return {n: counters.interface[n] for n in names if n in counters.interface}


def ring_can_grow(nic: Nic) -> bool:
    rings = nic.rings
    return rings is not None and 0 < rings.rx < rings.rx_max


def ring_fix(nic: Nic) -> str:
    return f"ethtool -G {shell_word(nic.name)} rx {nic.rings.rx_max}" if nic.rings else ""


def _ring_evidence(nic: Nic) -> dict:
    r = nic.rings
    return {"rx": r.rx, "rx_max": r.rx_max, "tx": r.tx, "tx_max": r.tx_max} if r else {}


# Which settings another agent may own, per finding id pattern (the first match wins): named in their evidence.
FINDING_SETTINGS = [("RING*", ("rings",))]


def run(facts: Facts, judged: Judged) -> List[Finding]:
    counters = {c.nic: c for c in facts.nic_counters}
    out = []
    for nic in present_nics(facts, judged):
        if not ring_can_grow(nic):
            continue
        rings = nic.rings
        overflow = ring_overflow(nic, counters.get(nic.name))
        rising = {k: v for k, v in overflow.items() if v.rise}
        old = {k: v.total for k, v in overflow.items() if v.total}
        if rising:
            what = ", ".join(f"{k} +{v.rise} ({v.per_s:g}/s)" for k, v in rising.items())
            out.append(Finding(
                "RING-RX-DROPS", Severity.WARNING, nic.name,
                f"receive ring full during the sample ({what}) with the RX ring at {rings.rx} of {rings.rx_max}",
                {**_ring_evidence(nic), "rising": {k: {"rise": v.rise, "per_s": v.per_s} for k, v in rising.items()},
                 "since_boot": old},
                ring_fix(nic)))
        elif old:
            what = ", ".join(f"{k} {v}" for k, v in old.items())
            out.append(Finding(
                "RING-RX-DROPS", Severity.INFO, nic.name,
                f"receive ring overflowed since boot ({what}), not during the sample; RX ring {rings.rx} of "
                f"{rings.rx_max}",
                {**_ring_evidence(nic), "since_boot": old,
                 "next": "sample under load (guestcheck doctor --sample 10) to see whether it still happens"},
                ring_fix(nic)))
        elif rings.rx * SMALL_SHARE < rings.rx_max:
            out.append(Finding(
                "RING-RX-SMALL", Severity.INFO, nic.name,
                f"RX ring {rings.rx} of {rings.rx_max} descriptors, no receive ring drops yet",
                _ring_evidence(nic), ring_fix(nic)))
        else:
            out.append(_ring_ok(nic))
    for nic in present_nics(facts, judged):  # rings that cannot grow: at their maximum (or fixed) are fine as they are
        if nic.rings is not None and nic.rings.rx_max > 0 and not ring_can_grow(nic):
            out.append(_ring_ok(nic))
    return out


def _ring_ok(nic: Nic) -> Finding:
    r = nic.rings
    at_max = " (its maximum)" if r.rx >= r.rx_max else ""
    return Finding("RING-RX-OK", Severity.OK, nic.name, f"RX ring {r.rx} of {r.rx_max} descriptors{at_max}",
                   _ring_evidence(nic), "")
