"""How a `watch` frame is shown: a screen redrawn in place on a terminal, one line per interval on a pipe.

Flagged values (what a doctor check reports as warning or worse) are bold red on a colour terminal and end
in "!" elsewhere, so a pipe keeps the highlight. Interface names are escaped (escape_control): a name is
kernel text and may hold an ESC.
"""

from __future__ import annotations

import datetime
from typing import List, Sequence

from guestcheck.quantities import format_rate
from guestcheck.text import escape_control
from guestcheck.watch.events import LinkEvent
from guestcheck.watch.frame import Frame, LinkRates, Rates

CLEAR = "\033[H\033[J"  # cursor home, erase below: redraw without scrolling
_RED, _RESET = "\033[1;31m", "\033[0m"
MAX_EVENTS_SHOWN = 8


def _count(value: float) -> str:
    """Packets and drops per second, three digits: 812k/s."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


class Marker:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, flagged: bool) -> str:
        if not flagged:
            return text
        return f"{_RED}{text}{_RESET}" if self.colour else f"{text}!"


def _clock(when: float) -> str:
    return datetime.datetime.fromtimestamp(when).strftime("%H:%M:%S")


def event_text(event: LinkEvent) -> str:
    if event.kind == "lost":
        return "some link events were lost (the kernel's buffer overflowed)"
    name = escape_control(event.name)
    if event.kind == "renamed" and event.old_name:
        return f"{escape_control(event.old_name)} renamed to {name}"
    return f"{name} {event.kind}"


def event_line(event: LinkEvent) -> str:
    """An event as its own line on a pipe."""
    return f"{_clock(event.when)} event: {event_text(event)}"


def _drops(rates: Rates, mark: Marker) -> str:
    return mark(f"drops {_count(rates.drops_per_s)}/s", rates.drops_per_s > 0)


def _link_words(link: LinkRates, mark: Marker) -> str:
    r = link.rates
    return (f"{escape_control(link.name)} rx {format_rate(r.rx_bps)} {_count(r.rx_pps)} pkt/s "
            f"tx {format_rate(r.tx_bps)} {_count(r.tx_pps)} pkt/s {_drops(r, mark)}")


def _softnet_words(frame: Frame, mark: Marker) -> List[str]:
    words = []
    for c in frame.softnet:
        cpu = f"cpu{c.cpu}"
        dropped = mark(f"{_count(c.dropped_per_s)}", frame.flagged("SOFTIRQ-DROPS", cpu))
        squeezed = mark(f"{_count(c.squeezed_per_s)}", frame.flagged("SOFTIRQ-SQUEEZE", cpu))
        net_rx = mark(_count(c.net_rx_per_s or 0.0), frame.flagged("SOFTIRQ-IMBALANCE", cpu))
        words.append(f"{cpu} net_rx {net_rx}/s drop {dropped}/s squeeze {squeezed}/s")
    return words


def _steal_text(frame: Frame, mark: Marker) -> str:
    s = frame.steal
    if s is None or s.percent is None:
        return "steal ?"
    return mark(f"steal {s.percent:.1f}%", frame.flagged("CPU-STEAL", "cpu"))


def ledger_words(frame: Frame) -> List[str]:
    """The ledger's rows that moved this interval: "qdisc gc0 tbf 8001: root drops +8 (8/s)"."""
    out = []
    for r in frame.ledger:
        where = r.where
        if r.counter == "backlog_bytes":
            out.append(escape_control(f"{r.layer} {where} backlog {r.total} bytes"))
        else:
            out.append(escape_control(f"{r.layer} {where + ' ' if where else ''}{r.counter} +{r.rise} "
                                      f"({_count(r.per_s or 0.0)}/s)"))
    return out


def drops_words(frame: Frame) -> List[str]:
    """With --drops: each reason's packets this interval ("NO_SOCKET +500")."""
    return [escape_control(f"{reason} +{count}") for reason, count in (frame.drops or {}).items()]


def line(frame: Frame, when: float) -> str:
    """One interval on one line, for a pipe or a log."""
    mark = Marker(False)
    parts = [_link_words(link, mark) for link in frame.links] or ["no interfaces"]
    softnet = "; ".join(_softnet_words(frame, mark))
    ledger = "; ".join(ledger_words(frame))
    drops = ", ".join(drops_words(frame))
    return f"{_clock(when)} " + " | ".join(parts) + (f" | {softnet}" if softnet else "") + \
        f" | {_steal_text(frame, mark)}" + (f" | ledger: {ledger}" if ledger else "") + \
        (f" | drop reasons (machine-wide): {drops}" if drops else "") + \
        "".join(f" | {escape_control(note)}" for note in frame.notes if note.startswith("drop reasons"))


def _row(label: str, r: Rates, mark: Marker, rx: bool = True, tx: bool = True) -> str:
    """One row of the table; a queue fills only its own direction's columns."""
    rx_cols = f"{format_rate(r.rx_bps):>14} {_count(r.rx_pps):>9}" if rx else f"{'-':>14} {'-':>9}"
    tx_cols = f"{format_rate(r.tx_bps):>14} {_count(r.tx_pps):>9}" if tx else f"{'-':>14} {'-':>9}"
    return f"{label:<16} {rx_cols} {tx_cols}  {mark(_count(r.drops_per_s), r.drops_per_s > 0)}"


def screen(frame: Frame, when: float, events: Sequence[LinkEvent], *, colour: bool, interval: float) -> str:
    """The whole terminal view, redrawn each interval."""
    mark = Marker(colour)
    out = [f"guestcheck watch - {_clock(when)}, every {interval:g} s (Ctrl-C to stop)", ""]
    out.append(f"{'interface':<16} {'rx':>14} {'rx pkt/s':>9} {'tx':>14} {'tx pkt/s':>9}  drops/s")
    for link in frame.links:
        out.append(_row(escape_control(link.name), link.rates, mark))
        out += [_row(f"  {d}-{q}", rates, mark, rx=d == "rx", tx=d == "tx") for (d, q), rates in link.queues.items()]
    if not frame.links:
        out.append("(no interfaces)")
    out.append("")
    out.append("softnet (per CPU):" if frame.softnet else "softnet: /proc/net/softnet_stat not readable")
    out += [f"  {w}" for w in _softnet_words(frame, mark)]
    steal = _steal_text(frame, mark)
    if frame.steal is not None and frame.steal.per_cpu:
        steal += " (" + ", ".join(f"{cpu} {p:.1f}%" for cpu, p in frame.steal.per_cpu.items()) + ")"
    out += ["", steal]
    moved = ledger_words(frame)
    out += ["", "ledger (rows that moved):"] + [f"  {w}" for w in moved] if moved else ["", "ledger: nothing moved"]
    if frame.drops is not None:
        reasons = drops_words(frame)
        out += ["", "drop reasons (the kernel's, machine-wide):"] + [f"  {w}" for w in reasons] if reasons else [
            "", "drop reasons: none this interval"]
    if frame.flags:
        out.append("")
        out += [mark(f"doctor would flag {f.id} [{escape_control(f.subject)}]: {escape_control(f.summary)}", True)
                for f in frame.flags]
    if events:
        out += ["", "events:"]
        out += [f"  {_clock(e.when)} {event_text(e)}" for e in list(events)[-MAX_EVENTS_SHOWN:]]
    return CLEAR + "\n".join(out) + "\n"
