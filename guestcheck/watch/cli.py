"""`guestcheck watch [IFACE...]`: the click command and its loop.

Each interval it reads the counters once and shows the rates since the last reading; link events are shown as
they arrive (select() on the event socket between ticks). Ctrl-C is the way to stop it: exit 0, no traceback.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

import click

from guestcheck.clitypes import WholeType
from guestcheck.collect.fs import cat_int
from guestcheck.quantities import seconds_from_text
from guestcheck.roots import Roots
from guestcheck.text import escape_control
from guestcheck.watch.events import IFF_LOWER_UP, SOURCES, EventSourceError, LinkEvent, open_events
from guestcheck.watch.frame import Frame, Reading, make_frame, take_reading
from guestcheck.watch.links import interface_names
from guestcheck.watch.view import MAX_EVENTS_SHOWN, event_line, line, screen

MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0
MAX_COUNT = 10**9
MAX_EVENTS_KEPT = MAX_EVENTS_SHOWN  # the screen shows the last ones; piped, each is printed as it comes


class IntervalType(click.ParamType):
    name = "SECONDS"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        if isinstance(value, float):
            return value
        try:
            return seconds_from_text(str(value), MIN_INTERVAL, MAX_INTERVAL)
        except ValueError as e:
            self.fail(str(e), param, ctx)


def present_links(roots: Roots) -> Dict[int, Tuple[str, int]]:
    """ifindex -> (name, IFF_LOWER_UP if it has a carrier): the links that exist make no events."""
    out = {}
    for name in interface_names(roots):
        base = os.path.join(roots.sys, "class/net", name)
        index = cat_int(os.path.join(base, "ifindex"))
        if index is not None:
            out[index] = (name, IFF_LOWER_UP if cat_int(os.path.join(base, "carrier")) == 1 else 0)
    return out


class Watch:
    """The loop's state: what to read, the last reading, the events seen."""

    def __init__(self, roots: Roots, wanted: List[str], interval: float, tty: bool, colour: bool) -> None:
        from guestcheck.collect.ethtool import ethtool_source
        from guestcheck.collect.host import collect_host

        self.roots, self.wanted, self.interval, self.tty, self.colour = roots, wanted, interval, tty, colour
        self.ethtool = ethtool_source(roots)
        self.vcpus = collect_host(roots).vcpus
        self.events: Deque[LinkEvent] = deque(maxlen=MAX_EVENTS_KEPT)  # a flapping link runs for days
        self.last: Optional[Tuple[Frame, float]] = None
        self.trace: Any = None  # a DropTrace with --drops, open for the whole watch
        self.drops_note = ""  # why --drops shows nothing, once
        self.drops_before: Dict[str, int] = {}

    def names(self) -> List[str]:
        """The named interfaces, or every one but loopback (new ones join as they appear)."""
        return self.wanted or [n for n in interface_names(self.roots) if n != "lo"]

    def reading(self) -> Reading:
        return take_reading(self.roots, self.names(), self.ethtool)

    def show_events(self, new: List[LinkEvent]) -> None:
        if not new:
            return
        self.events.extend(new)
        if not self.tty:
            self.write("".join(event_line(e) + "\n" for e in new))
        elif self.last is not None:  # redraw at once with the event, the figures of the last interval
            self.write(screen(*self.last, self.events, colour=self.colour, interval=self.interval))

    def show_frame(self, before: Reading, after: Reading) -> None:
        frame = make_frame(before, after, self.vcpus, self.roots)
        if self.trace is not None:
            self.add_drops(frame)
        now = time.time()
        if self.tty:
            self.last = (frame, now)
            self.write(screen(frame, now, self.events, colour=self.colour, interval=self.interval))
        else:
            self.write(line(frame, now) + "\n")

    def add_drops(self, frame: Frame) -> None:
        """The reasons counted since the last frame (the trace counts over the whole watch)."""
        seen = self.trace.snapshot()
        if not seen.available:
            if not self.drops_note:
                self.drops_note = f"drop reasons: not sampled: {seen.reason_unavailable}"
                frame.notes.append(self.drops_note)
            return
        now = seen.by_reason()
        noise = {r.reason for r in seen.rows if r.noise}
        frame.drops = {r: n - self.drops_before.get(r, 0) for r, n in sorted(now.items(), key=lambda kv: -kv[1])
                       if n > self.drops_before.get(r, 0) and r not in noise}
        self.drops_before = now

    @staticmethod
    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


def run_watch(watch: Watch, source: Any, count: int) -> None:
    before = watch.reading()
    next_tick = before.monotonic + watch.interval
    shown = 0
    while count == 0 or shown < count:
        wait = max(0.0, next_tick - time.monotonic())
        if source is not None:
            ready, _, _ = select.select([source], [], [], wait)
            if ready:
                watch.show_events(source.read())
                continue
        else:
            time.sleep(wait)
        after = watch.reading()
        watch.show_frame(before, after)
        shown += 1
        before = after
        next_tick += watch.interval
        if next_tick < time.monotonic():  # a slow terminal or a suspended process: don't race to catch up
            next_tick = time.monotonic() + watch.interval


@click.command()
@click.argument("interfaces", nargs=-1, metavar="[IFACE]...")
@click.option("--interval", type=IntervalType(), default=1.0, show_default=True, metavar="SECONDS",
              help=f"Seconds between readings, {MIN_INTERVAL:g} to {MAX_INTERVAL:g}.")
@click.option("--count", type=WholeType(0, MAX_COUNT), default=0, metavar="N",
              help="Stop after N intervals (default: until Ctrl-C).")
@click.option("--events", "event_source", type=click.Choice(SOURCES), default="auto", show_default=True,
              help="Where NIC add/remove events come from: udev where udevd runs in this network namespace, "
                   "else rtnetlink; none: no events.")
@click.option("--drops", is_flag=True,
              help="Also show the kernel's reason for each packet dropped, live (root; Linux 5.17+; machine-wide).")
def watch(interfaces: tuple[str, ...], interval: float, count: int, event_source: str, drops: bool) -> None:
    """Live per-interface and per-queue rates, drops, softnet and steal, and NIC add/remove events.

    On a terminal the view is redrawn every interval, with what a doctor check would flag in red; piped, it
    prints one line per interval (flagged values end in "!") and each event on a line of its own. Ctrl-C
    stops it with exit code 0.
    """
    roots = Roots.from_env()
    present = interface_names(roots)
    for name in interfaces:
        if name not in present:
            raise click.ClickException(f"no network interface named {escape_control(repr(name))}")
    tty = sys.stdout.isatty()
    view = Watch(roots, list(dict.fromkeys(interfaces)), interval, tty, tty and "NO_COLOR" not in os.environ)
    try:
        source = open_events(event_source, roots, present_links(roots))
    except EventSourceError as e:
        raise click.ClickException(str(e)) from None
    if drops:
        from guestcheck.trace.session import DropTrace

        if os.geteuid() != 0:
            view.drops_note = "drop reasons: not sampled: --drops needs root (tracefs is root's)"
            sys.stderr.write(view.drops_note + "\n")
        else:
            view.trace = DropTrace(roots)
            view.trace.start()
    try:
        run_watch(view, source, count)
    except KeyboardInterrupt:
        if tty:
            Watch.write("\n")
    finally:
        if view.trace is not None:
            view.trace.close()  # the trace instance is ours: removed on every way out
        if source is not None:
            source.close()
