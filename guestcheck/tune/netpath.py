"""The path a profile is sized to: --rate with --rtt, or with --peer (the RTT measured by selftest's probe),
and the facts of this kernel and its memory that bound the buffers. The arithmetic is in sizing.py."""

from __future__ import annotations

from typing import Any, Callable, Optional

from guestcheck.selftest.probe import ConnectRtt, connect_rtt
from guestcheck.text import escape_control
from guestcheck.tune import TuneError, guard
from guestcheck.tune.live import ProcSys
from guestcheck.tune.profile import Guards
from guestcheck.tune.sizing import MAX_RTT_S, MIN_RTT_S, MemoryCap, NetPath, Sizing, overhead, size

PROBE_SAMPLES = 5
PROBE_TIMEOUT_S = 2.0
RESOLVE_TIMEOUT_S = 5.0
SIZING_GUARD = Guards(requires_guaranteed_memory=True)  # a sized apply grows buffers: the memory must stay


def parse_path(rate: Optional[str], rtt: Optional[str], peer: Optional[str],
               probe: Callable[..., Optional[ConnectRtt]] = connect_rtt) -> Optional[NetPath]:
    """None when no path was given; TuneError (one line) for anything malformed or a peer that does not answer."""
    from guestcheck.quantities import parse_duration, parse_rate

    if rate is None and rtt is None and peer is None:
        return None
    if rate is None:
        raise TuneError("--rtt and --peer need --rate RATE (the path's bandwidth, e.g. 400M)")
    if (rtt is None) == (peer is None):
        raise TuneError("give the round trip as either --rtt TIME or --peer HOST, one of them")
    try:
        bps = parse_rate(rate)
    except ValueError as e:
        raise TuneError(f"--rate: {escape_control(str(e))}") from None
    if rtt is not None:
        try:
            seconds = parse_duration(rtt)
        except ValueError as e:
            raise TuneError(f"--rtt: {escape_control(str(e))}") from None
        source = f"--rtt {escape_control(rtt)}"
    else:
        seconds, source = measure_rtt(peer or "", probe)
    if not MIN_RTT_S <= seconds <= MAX_RTT_S:
        raise TuneError(f"round trip {seconds:g} s is out of range ({MIN_RTT_S * 1e6:g} us to {MAX_RTT_S:g} s)")
    return NetPath(bps, seconds, source)


def measure_rtt(text: str, probe: Callable[..., Optional[ConnectRtt]] = connect_rtt) -> tuple:
    """(seconds, source): the least of a few TCP connect round trips to the peer (queues add, never subtract)."""
    from guestcheck.selftest.errors import SelftestError
    from guestcheck.selftest.peer import parse_peer, resolve

    try:
        peer = parse_peer(text)
        address = resolve(peer, RESOLVE_TIMEOUT_S)
    except SelftestError as e:
        raise TuneError(f"--peer: {escape_control(str(e))}") from None
    measured = probe(address, peer.port, samples=PROBE_SAMPLES, timeout=PROBE_TIMEOUT_S)
    if measured is None:
        raise TuneError(f"--peer: {escape_control(str(peer))} did not answer a TCP connect within "
                        f"{PROBE_TIMEOUT_S:g} s; give the round trip with --rtt instead")
    shown = escape_control(str(peer))
    return measured.min_ms / 1000, (f"measured: least of {len(measured.samples_ms)} TCP connects to {shown}, "
                                     f"median {measured.median_ms:.3g} ms")


def memory_cap(facts: Any, guards: Guards, verdict_of: Callable[[Any], Any]) -> MemoryCap:
    """1/16 (or the profile's max_buffer_share) of the RAM doctor's memory verdict counts as usable; 1/64 of
    MemTotal where only an idle or deflate-on-oom balloon keeps memory from being guaranteed."""
    verdict = verdict_of(facts)
    ram = guard.total_ram_bytes(facts, verdict)
    if ram is None or ram <= 0:
        raise TuneError("RAM unknown: the buffers cannot be bounded by memory (give --facts FILE with memory facts)")
    share = guard.buffer_share(guards)
    bounded = guard.bounded_allowance(facts, verdict)
    if bounded is not None:
        return MemoryCap(bounded.mem_total_bytes, min(share, guard.IDLE_BALLOON_SHARE), False,
                         "; ".join(bounded.evidence) or "an idle balloon")
    return MemoryCap(ram, share, getattr(verdict, "guaranteed", None))


def size_path(path: NetPath, procsys: ProcSys, facts: Any, guards: Guards, verdict_of: Callable[[Any], Any]) -> Sizing:
    over = overhead(procsys.read("net.ipv4.tcp_adv_win_scale"), procsys.read("kernel.osrelease"))
    return size(path, over, memory_cap(facts, guards, verdict_of))
