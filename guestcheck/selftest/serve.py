"""The peer side: `iperf3 -s -J` under our control, reporting each test and stopping when told to.

`--once` serves one client session, not one iperf3 test: a guestcheck selftest makes several runs, each
tagged "run=K/N" through iperf3's --extra-data, and the server stops after run N (or after a failed run);
a plain iperf3 client's single test ends it too. Connections that start no test (port scanners, our own
connect probe) are ignored. Beside iperf3 it runs the latency echo (guestcheck.selftest.echo) on UDP port + 1,
named in the first line, for as long as it serves. `--time-limit` bounds the whole thing (10 minutes unless told;
0 turns it off).
iperf3's own `-1` would stop after the first of the selftest's runs.

iperf3 never outlives us: SIGTERM, SIGHUP (the SSH session closed) and Ctrl-C stop it from a `finally`,
and the kernel kills it if we die without running one (SIGKILL; guestcheck.selftest.children). Each
result carries the client's own words (its --extra-data, its address, its stream count), so every value
is read with its type and range checked (guestcheck.selftest.untrusted).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from guestcheck.collect.fs import cat
from guestcheck.netaddr import bracketed
from guestcheck.quantities import format_rate, maybe_int, parse_int
from guestcheck.selftest.children import die_with_parent
from guestcheck.selftest.echo import UdpEcho
from guestcheck.selftest.errors import IPERF3_FAILED, SelftestError
from guestcheck.selftest.iperf3 import MAX_MEASURED_BPS, MAX_STREAMS, kill_group, supported_options
from guestcheck.selftest.untrusted import as_dict, as_list, load_object, number, printable, text, whole

STARTUP_SECONDS = 5.0
DEFAULT_TIME_LIMIT = 600.0  # seconds; a forgotten server stops by itself
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
MAX_OBJECT_CHARS = 64 * 2**20  # one test's JSON; a whole day of per-second intervals stays far below
MAX_TAG_CHARS = 200
_TAG = re.compile(r"^guestcheck-selftest/1 .*\brun=([0-9]{1,6})/([0-9]{1,6})\b")


@dataclass
class ServedTest:
    client: str
    direction: str  # from the client's point of view: upload = the client sent
    streams: int
    throughput_bps: Optional[float]  # measured on the server's side
    error: Optional[str]
    run: Optional[tuple[int, int]]  # (K, N) when a guestcheck selftest sent it

    def describe(self) -> str:
        what = f"{self.direction}, {self.streams} stream{'s' if self.streams != 1 else ''}"
        tail = f" (guestcheck run {self.run[0]}/{self.run[1]})" if self.run else ""
        if self.error:
            return f"test from {self.client} failed: {what}: {self.error}{tail}"
        rate = format_rate(self.throughput_bps) if self.throughput_bps is not None else "?"
        verb = "sent" if self.direction == "download" else "received"
        return f"served {self.client}: {what}, {verb} {rate}{tail}"

    @property
    def ends_session(self) -> bool:
        return self.run is None or self.error is not None or self.run[0] >= self.run[1]


def server_argv(binary: str, bind: Optional[str], port: int, timeout: float, options: frozenset[str]) -> list[str]:
    argv = [binary, "-s", "-J", "-p", str(port)]
    if bind:
        argv += ["-B", bind]
    if "--rcv-timeout" in options:  # a client that vanishes mid-test frees the server after this long
        argv += ["--rcv-timeout", str(max(1, round(timeout * 1000)))]
    return argv


def json_objects(lines: Iterator[str], junk: list[str]) -> Iterator[str]:
    """Top-level objects from iperf3's stream of pretty-printed JSON; other lines go to `junk`.

    An object longer than MAX_OBJECT_CHARS is skipped (noted in `junk`), so memory stays bounded."""
    chunk: list[str] = []
    size = 0
    oversized = False
    for line in lines:
        if not chunk and not oversized and not line.startswith("{"):
            if line.strip():
                junk.append(printable(line))
            continue
        closes = line.rstrip("\n") == "}"
        if not oversized:
            chunk.append(line)
            size += len(line)
            if size > MAX_OBJECT_CHARS:
                chunk, size, oversized = [], 0, True
                junk.append(f"an iperf3 result longer than {MAX_OBJECT_CHARS} characters was skipped")
        if closes:
            if not oversized:
                yield "".join(chunk)
            chunk, size, oversized = [], 0, False


def parse_served(doc: dict[str, Any]) -> Optional[ServedTest]:
    """One server-side result; None for a connection that never started a test. Never raises."""
    start = as_dict(doc.get("start"))
    connected = as_list(start.get("connected"))
    if not connected:
        return None
    test = as_dict(start.get("test_start"))
    accepted = as_dict(start.get("accepted_connection"))
    client = text(accepted.get("host"), 64) or text(as_dict(connected[0]).get("remote_host"), 64) or "?"
    end = as_dict(doc.get("end"))
    reverse = whole(test.get("reverse"), 0, 1) == 1
    # the server's own side: what it received on an upload, what it sent on a download (-R)
    ours = as_dict(end.get("sum_sent") if reverse else end.get("sum_received"))
    tag = doc.get("extra_data")
    match = _TAG.match(tag) if isinstance(tag, str) and len(tag) <= MAX_TAG_CHARS else None
    error = doc.get("error")
    return ServedTest(
        client=client,
        direction="download" if reverse else "upload",
        streams=whole(test.get("num_streams"), 1, MAX_STREAMS) or min(len(connected), MAX_STREAMS),
        throughput_bps=number(ours.get("bits_per_second"), 0, MAX_MEASURED_BPS),
        error=(text(error) or "an error that is not text") if error else None,
        run=(parse_int(match.group(1)), parse_int(match.group(2))) if match else None,
    )


def listening(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on `port` (its fds against /proc/net/tcp*)."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):  # closed since the listing
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        rows = (cat(table) or "").splitlines()[1:]
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and maybe_int(cols[1].rsplit(":", 1)[1], base=16) == port \
                    and cols[9] in inodes:
                return True
    return False


class _Stop(Exception):
    """SIGTERM or SIGHUP: stop serving cleanly."""


def _stop_once() -> Callable[[int, Any], None]:
    """A handler that raises _Stop on the first stop signal only, so a second one cannot cut the cleanup short."""
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not fired:
            fired.append(signum)
            raise _Stop(signal.Signals(signum).name)

    return handler


def describe_start(bind: Optional[str], port: int, once: bool, time_limit: Optional[float], echo: str = "") -> str:
    """The first line: where it listens and for how long, so nobody leaves a server open by mistake; then the
    latency echo's port, which a client may be given (--echo-port), or why there is none."""
    where = bracketed(bind) if bind else "all addresses (--bind ADDR narrows it)"
    limit = f"time limit {time_limit:g}s" if time_limit else "no time limit"
    # the echo goes before the time limit: readers of the line's start (where) and end (the limit) keep working
    return f"iperf3 server listening on {where} port {port}{', one session' if once else ''}{echo}, {limit}"


def open_echo(bind: Optional[str], echo_port: int) -> tuple[Optional[UdpEcho], str]:
    """The latency echo, started, and the first line's words for it; a port in use costs the echo, not the
    server (the client then probes a closed TCP port instead)."""
    if not echo_port:
        return None, ", no latency echo"
    try:
        echo = UdpEcho(bind, echo_port).start()
    except OSError as e:
        return None, f", no latency echo (udp port {echo_port}: {e.strerror or e})"
    return echo, f", latency echo on udp port {echo_port}"


def serve(binary: str, *, bind: Optional[str], port: int, once: bool, time_limit: Optional[float],
          timeout: float, say: Callable[[str], None], echo_port: int = 0) -> None:
    """Run until --once's session ends, the time limit (None or 0: none), or SIGTERM/SIGHUP/Ctrl-C;
    iperf3 never outlives us."""
    argv = server_argv(binary, bind, port, timeout, supported_options(binary))
    started = time.monotonic()
    deadline = started + time_limit if time_limit else None
    # A stop signal before the handlers below are in place takes the default action (we die) and the
    # kernel then kills iperf3: die_with_parent covers that window too.
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True, preexec_fn=die_with_parent())
    events: queue.Queue = queue.Queue()
    junk: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        try:
            for chunk in json_objects(iter(proc.stdout.readline, ""), junk):
                doc = load_object(chunk)
                if doc is None:
                    junk.append("unreadable JSON from iperf3")
                else:
                    events.put(doc)
        finally:
            events.put(None)  # iperf3 closed its output (it has exited), or reading failed

    reader = threading.Thread(target=read, name="iperf3-server-output", daemon=True)
    reader.start()
    old_handlers = {}
    echo: Optional[UdpEcho] = None
    try:
        if threading.current_thread() is threading.main_thread():
            handler = _stop_once()
            for sig in STOP_SIGNALS:
                old_handlers[sig] = signal.signal(sig, handler)
        _wait_listening(proc, port, events, junk, bind)
        echo, echo_words = open_echo(bind, echo_port)
        say(describe_start(bind, port, once, time_limit, echo_words))
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            if deadline is not None and wait <= 0:
                say(f"time limit reached after {time.monotonic() - started:.0f}s")
                return
            try:
                event = events.get(timeout=wait)
            except queue.Empty:
                continue
            if event is None:
                raise _exited(proc, junk)
            test = parse_served(event)
            if test is None:
                continue
            say(test.describe())
            if once and test.ends_session:
                return
    except _Stop as stop:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            say(f"stopped ({stop})")
    finally:
        if echo is not None:
            echo.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                proc.wait()


def _exited(proc: subprocess.Popen, junk: list[str]) -> SelftestError:
    proc.wait()
    reason = junk[-1] if junk else f"exit status {proc.returncode}"
    return SelftestError(IPERF3_FAILED, f"the iperf3 server stopped: {reason}")


def _wait_listening(proc: subprocess.Popen, port: int, events: queue.Queue, junk: list[str],
                    bind: Optional[str]) -> None:
    """Until iperf3 holds the listening socket; its own error (port in use, bad address) otherwise."""
    limit = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < limit:
        if listening(proc.pid, port):
            return
        if proc.poll() is not None:
            try:
                while True:
                    event = events.get(timeout=1)
                    if event is None:
                        break
                    message = text(event.get("error"))
                    if message:
                        message = message.replace("error - ", "", 1)
                        raise SelftestError(IPERF3_FAILED, f"iperf3 cannot serve on port {port}"
                                                           f"{' at ' + bind if bind else ''}: {message}")
            except queue.Empty:
                pass
            raise _exited(proc, junk)
        time.sleep(0.05)
    raise SelftestError(IPERF3_FAILED, f"iperf3 did not start listening on port {port} within {STARTUP_SECONDS:g}s")
