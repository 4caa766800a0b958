"""One drop-reason trace over a window: `with DropTrace(roots) as t: <the window>` then `t.result()`.

The skb:kfree_skb tracepoint is enabled in a trace instance of our own (instances/guestcheck-PID), its trace_pipe
is read by a thread for the window (non-blocking, select), and every event is counted by (reason, protocol,
location function). The instance is removed on every way out: the `with` block's end, an exception, SIGINT,
SIGTERM and SIGHUP (handlers installed for the window only, the previous ones put back, and the signal then
delivered again so the caller's own handling still happens). SIGKILL cannot be caught: the next run removes the
instance a dead PID left (cleanup_leftovers).

Nothing here raises to the caller: a kernel older than 5.17, no tracefs, lockdown, a read-only tracefs, no
permission or a name already taken gives a result with available=False and a one-line reason_unavailable.

The tracepoint is machine-wide: it sees the drops of every network namespace, so the result says machine_wide.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from guestcheck.facts import NOISE_REASONS, DropReasons, DropRow
from guestcheck.regularfile import read_regular
from guestcheck.roots import Roots
from guestcheck.text import escape_control
from guestcheck.trace import tracefs
from guestcheck.trace.events import MAX_FORMAT, MAX_LINE, Event, KfreeSkbFormat, parse_format, parse_line

CAP_PER_SECOND = 20000  # events parsed per second; past it lines are counted, not parsed
MAX_ROWS = 2000  # distinct (reason, protocol, location); past it new locations share one row
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READ_CHUNK = 1 << 16
POLL_SECONDS = 0.2
DRAIN_SECONDS = 2.0  # after the window: what the ring buffer still holds is read, for this long at most
EVENT_DIR = "events/skb/kfree_skb"


class Aggregator:
    """Counts event lines fed as bytes: partial lines are kept for the next chunk (up to MAX_LINE)."""

    def __init__(self, known: frozenset, cap_per_second: int = CAP_PER_SECOND) -> None:
        self.known = known
        self.cap = cap_per_second
        self.counts: Dict[Tuple[str, str, str], int] = {}
        self.seen = self.counted = self.not_counted = self.lost = self.malformed = 0
        self.capped = False
        self._tail = b""
        self._slot: Optional[int] = None
        self._in_slot = 0

    def feed(self, data: bytes, now: float) -> None:
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > MAX_LINE:  # no newline in sight: not a line of ours, drop it
            self._tail = b""
            self.malformed += 1
        slot = int(now)
        if slot != self._slot:
            self._slot, self._in_slot = slot, 0
        for raw in lines:
            if not raw:
                continue
            if self._in_slot >= self.cap and not raw.startswith(b"CPU:"):
                self.seen += 1
                self.not_counted += 1
                self.capped = True
                continue
            self._take(raw.decode("latin-1"))

    def _take(self, line: str) -> None:
        kind, value = parse_line(line)
        if kind == "lost":
            self.lost += int(value)  # type: ignore[call-overload]
            return
        if kind != "event" or not isinstance(value, Event):
            self.malformed += 1
            return
        self.seen += 1
        self.counted += 1
        self._in_slot += 1
        key = (value.reason, value.protocol, value.location)
        if key not in self.counts and len(self.counts) >= MAX_ROWS:
            key = (value.reason, value.protocol, "(more locations)")
        self.counts[key] = self.counts.get(key, 0) + 1

    def rows(self) -> List[DropRow]:
        rows = [DropRow(reason, protocol, location, count, known=reason in self.known,
                        noise=reason in NOISE_REASONS)
                for (reason, protocol, location), count in self.counts.items()]
        return sorted(rows, key=lambda r: (-r.count, r.reason, r.protocol, r.location))


def unavailable(why: str) -> DropReasons:
    return DropReasons(available=False, reason_unavailable=escape_control(why))


class DropTrace:
    """The tracer for one window. `roots` says where /proc and /sys are (a fake tree in unit tests, where `ops`
    stands in for tracefs's mkdir); `clock` is monotonic seconds."""

    def __init__(self, roots: Optional[Roots] = None, *, cap_per_second: int = CAP_PER_SECOND,
                 ops: Optional[tracefs.Ops] = None, handle_signals: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.roots = roots or Roots()
        self.cap = cap_per_second
        self.ops = ops or tracefs.Ops()
        self.handle_signals = handle_signals
        self.clock = clock
        self.removed_leftovers: List[str] = []
        self.mounted_at: Optional[str] = None  # set when we mounted tracefs
        self.notes: List[str] = []  # what teardown could not do, one line each
        self._mounted_id: Optional[int] = None
        self._failed: Optional[str] = None
        self._format: Optional[KfreeSkbFormat] = None
        self._instance: Optional[str] = None
        self._enabled = False
        self._fd: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._agg: Optional[Aggregator] = None
        self._t0: Optional[float] = None
        self._seconds = 0.0
        self._previous: Dict[int, object] = {}
        self._closing = False
        self._closed = False
        self._pending: List[int] = []
        self._frame: Any = None  # the frame the signal interrupted, for a previous Python handler

    # -- the window ------------------------------------------------------------------------------------------------

    def __enter__(self) -> DropTrace:
        self.start()
        return self

    def __exit__(self, *exc: object) -> bool:
        self.close()
        return False

    @property
    def available(self) -> bool:
        return self._failed is None and self._agg is not None

    def start(self) -> None:
        """Begin sampling; never raises (a failure is kept for result())."""
        try:
            failed = self._start()
        except Exception as err:
            failed = f"drop reasons: {type(err).__name__}: {err}"
        if failed is not None:
            self._failed = failed
            self._teardown()

    def _start(self) -> Optional[str]:
        mounts = tracefs.mountinfo(self.roots)
        level = tracefs.lockdown(self.roots, mounts)
        if level == "confidentiality":
            return "kernel lockdown (confidentiality) forbids tracefs"
        found = tracefs.find_tracefs(mounts)
        if found is not None:
            top = tracefs.on_machine(self.roots, found.mount_point)
        else:
            top = tracefs.on_machine(self.roots, tracefs.TRACING_DIR)
            if not os.path.isdir(top):
                return f"tracefs is not mounted and {tracefs.TRACING_DIR} does not exist (no tracing in this kernel)"
            try:
                self.ops.mount_tracefs(top)
            except OSError as err:
                return tracefs.describe(err, f"mounting tracefs at {tracefs.TRACING_DIR}")
            self.mounted_at = top
            seen = tracefs.topmost(tracefs.mountinfo(self.roots), tracefs.TRACING_DIR)
            self._mounted_id = seen.mount_id if seen is not None and seen.fstype == "tracefs" else None
        try:
            text = read_regular(os.path.join(top, EVENT_DIR, "format"), MAX_FORMAT)
        except FileNotFoundError:
            return "this kernel has no skb:kfree_skb tracepoint"
        except (OSError, ValueError) as err:
            if isinstance(err, OSError):
                return tracefs.describe(err, "reading the kfree_skb format")
            return f"reading the kfree_skb format: {err}"
        try:
            fmt = parse_format(text.decode("latin-1"))
        except ValueError as err:
            return f"the kfree_skb format: {err}"
        if not fmt.has_reason:
            return f"kernel {os.uname().release}: kfree_skb carries no drop reason (Linux 5.17 added it)"
        self._format = fmt
        self.removed_leftovers = tracefs.cleanup_leftovers(top, self.ops)
        name = tracefs.instance_name()
        path = os.path.join(top, "instances", name)
        if os.path.lexists(path):
            return f"trace instance {name} exists already (not ours to use or remove)"
        try:
            self.ops.make_instance(path)
        except OSError as err:
            if err.errno == errno.EEXIST:
                return f"trace instance {name} exists already (not ours to use or remove)"
            return tracefs.describe(err, f"creating trace instance {name}")
        self._instance = path
        try:
            self.ops.write_control(os.path.join(path, EVENT_DIR, "enable"), b"1")
            self._enabled = True
            self._fd = os.open(os.path.join(path, "trace_pipe"),
                               os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as err:
            return tracefs.describe(err, f"enabling kfree_skb in {name}")
        self._agg = Aggregator(fmt.known, self.cap)
        self._install_handlers()
        self._t0 = self.clock()
        self._thread = threading.Thread(target=self._run, name="guestcheck-droptrace", daemon=True)
        self._thread.start()
        return None

    # -- reading ---------------------------------------------------------------------------------------------------

    def _read_some(self) -> bool:
        """One read: True when it gave bytes, False when the pipe is empty (EAGAIN), at its end, or failing."""
        if self._fd is None:
            return False
        try:
            data = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return False
        except OSError as err:
            self.notes.append(tracefs.describe(err, "reading trace_pipe"))
            return False
        if not data:
            return False
        with self._lock:
            assert self._agg is not None
            self._agg.feed(data, self.clock())
        return True

    def _run(self) -> None:
        fd = self._fd
        while not self._stop.is_set() and fd is not None:
            try:
                ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
            except (OSError, ValueError):
                break
            if ready and not self._read_some():
                self._stop.wait(POLL_SECONDS)  # a regular file at its end (a fake tree): do not spin
        deadline = self.clock() + DRAIN_SECONDS
        while self.clock() < deadline and self._read_some():
            pass

    # -- the end ---------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop sampling and give back everything borrowed. Idempotent; never raises."""
        if self._closed or self._closing:
            return
        self._closing = True
        try:
            if self._t0 is not None:
                self._seconds = max(0.0, self.clock() - self._t0)
            self._teardown()
        finally:
            self._closed = True
            self._restore_handlers()

    def _teardown(self) -> None:
        if self._enabled and self._instance is not None:
            with contextlib.suppress(OSError):  # the rmdir below disables it too
                self.ops.write_control(os.path.join(self._instance, EVENT_DIR, "enable"), b"0")
            self._enabled = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(DRAIN_SECONDS + 3 * POLL_SECONDS)
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._instance is not None:
            self._remove_instance(self._instance)
            self._instance = None
        if self.mounted_at is not None:
            self._unmount(self.mounted_at)
            self.mounted_at = None

    def _remove_instance(self, path: str) -> None:
        for attempt in range(20):
            try:
                self.ops.remove_instance(path)
                return
            except FileNotFoundError:
                return
            except OSError as err:
                if err.errno != errno.EBUSY or attempt == 19:
                    self.notes.append(tracefs.describe(err, f"removing trace instance {os.path.basename(path)}"))
                    return
                time.sleep(0.05)

    def _unmount(self, target: str) -> None:
        seen = tracefs.topmost(tracefs.mountinfo(self.roots), tracefs.TRACING_DIR)
        ours = (seen is None and self._mounted_id is None) or (
            seen is not None and self._mounted_id is not None and seen.mount_id == self._mounted_id)
        if not ours:
            self.notes.append(f"left {tracefs.TRACING_DIR} mounted: the mount there is no longer the one we made")
            return
        try:
            self.ops.unmount(target)
        except OSError as err:
            if err.errno != errno.EBUSY:
                self.notes.append(tracefs.describe(err, f"unmounting {tracefs.TRACING_DIR}"))
                return
            try:
                self.ops.unmount(target, lazy=True)  # someone is inside it: detach, it goes when they leave
            except OSError as again:
                self.notes.append(tracefs.describe(again, f"unmounting {tracefs.TRACING_DIR}"))

    # -- signals ---------------------------------------------------------------------------------------------------

    def _install_handlers(self) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except (OSError, ValueError):
                continue

    def _restore_handlers(self) -> None:
        """Put the previous handlers back, then let each signal that came during the window do what it did before:
        a Python handler is called (Python's own SIGINT handler raises KeyboardInterrupt here, at once, on every
        version: a signal sent again from inside a handler waits for the next check on 3.9), the default action
        is taken by sending the signal again, an ignored one stays ignored."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, handler)  # type: ignore[arg-type]
        pending, self._pending = self._pending, []
        for sig in pending:
            handler = previous.get(sig, signal.SIG_DFL)
            if callable(handler):
                handler(sig, self._frame)
            elif handler != signal.SIG_IGN:
                os.kill(os.getpid(), sig)

    def _on_signal(self, signum: int, frame: object) -> None:
        """Give the instance back, put the previous handler back, and let the signal do what it did before."""
        if self._pending or self._closing:
            self._pending.append(signum)  # close() is under way in this thread: it delivers the signal after
            return
        self._pending.append(signum)
        self._frame = frame
        self.close()

    # -- the answer ------------------------------------------------------------------------------------------------

    def snapshot(self) -> DropReasons:
        """What the window counted so far (watch shows this live); the trace goes on."""
        if self._failed is not None or self._agg is None or self._format is None:
            return unavailable(self._failed or "drop reasons were not sampled")
        with self._lock:
            agg = self._agg
            seconds = self._seconds if self._closed else (self.clock() - (self._t0 or self.clock()))
            return DropReasons(
                available=True, seconds=round(seconds, 3), machine_wide=True, capped=agg.capped,
                cap_per_second=self.cap, events_seen=agg.seen, events_counted=agg.counted,
                events_not_counted=agg.not_counted, events_lost=agg.lost, lines_malformed=agg.malformed,
                location_symbolic=self._format.location_symbolic, reasons_known=len(self._format.reasons),
                rows=agg.rows())

    def result(self) -> DropReasons:
        """The window's counts, after giving everything back (close() is called if the caller has not)."""
        self.close()
        return self.snapshot()


def cleanup_leftovers(roots: Optional[Roots] = None, ops: Optional[tracefs.Ops] = None) -> List[str]:
    """Remove the trace instances killed runs left (instances/guestcheck-PID of a PID that no longer runs), where
    tracefs is mounted; never mounts it, never touches another name. The names removed."""
    roots = roots or Roots()
    found = tracefs.find_tracefs(tracefs.mountinfo(roots))
    if found is None:
        return []
    return tracefs.cleanup_leftovers(tracefs.on_machine(roots, found.mount_point), ops)
