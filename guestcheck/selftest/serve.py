"""The peer side: `iperf3 -s -J` under our control, reporting each test and stopping when told to.

`--once` serves one client session, not one iperf3 test: a guestcheck selftest makes several runs, each
tagged "run=K/N" through iperf3's --extra-data, and the server stops after run N (or after a failed run);
a plain iperf3 client's single test ends it too. Connections that start no test (port scanners, our own
connect probe) are ignored. `--time-limit` bounds the whole thing. iperf3's own `-1` would stop after the
first of the selftest's runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from guestcheck.selftest.errors import IPERF3_FAILED, SelftestError
from guestcheck.selftest.iperf3 import kill_group, supported_options
from guestcheck.selftest.rate import format_rate

STARTUP_SECONDS = 5.0
_TAG = re.compile(r"^guestcheck-selftest/1 .*\brun=(\d+)/(\d+)\b")


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
        argv += ["--rcv-timeout", str(max(1, int(timeout * 1000)))]
    return argv


def json_objects(lines: Iterator[str], junk: list[str]) -> Iterator[str]:
    """Top-level objects from iperf3's stream of pretty-printed JSON; other lines go to `junk`."""
    chunk: list[str] = []
    for line in lines:
        if not chunk and not line.startswith("{"):
            if line.strip():
                junk.append(line.strip())
            continue
        chunk.append(line)
        if line.rstrip("\n") == "}":
            yield "".join(chunk)
            chunk = []


def parse_served(doc: dict[str, Any]) -> Optional[ServedTest]:
    """One server-side result; None for a connection that never started a test."""
    start = doc.get("start") or {}
    connected = start.get("connected") or []
    if not connected:
        return None
    test = start.get("test_start") or {}
    accepted = start.get("accepted_connection") or {}
    client = str(accepted.get("host") or connected[0].get("remote_host", "?"))
    end = doc.get("end") or {}
    # the server's own side: what it received on an upload, what it sent on a download (-R)
    ours = (end.get("sum_sent") if test.get("reverse") else end.get("sum_received")) or {}
    tag = doc.get("extra_data")
    match = _TAG.match(tag) if isinstance(tag, str) else None
    return ServedTest(
        client=client,
        direction="download" if test.get("reverse") else "upload",
        streams=int(test.get("num_streams") or len(connected)),
        throughput_bps=ours.get("bits_per_second"),
        error=str(doc["error"]) if doc.get("error") else None,
        run=(int(match.group(1)), int(match.group(2))) if match else None,
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
        try:
            with open(table, encoding="ascii") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port \
                    and cols[9] in inodes:
                return True
    return False


class _Stop(Exception):
    """SIGTERM: stop serving cleanly."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop()


def serve(binary: str, *, bind: Optional[str], port: int, once: bool, time_limit: Optional[float],
          timeout: float, say: Callable[[str], None]) -> None:
    """Run until --once's session ends, the time limit, or SIGTERM/Ctrl-C; iperf3 never outlives us."""
    argv = server_argv(binary, bind, port, timeout, supported_options(binary))
    started = time.monotonic()
    deadline = started + time_limit if time_limit else None
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    events: queue.Queue = queue.Queue()
    junk: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for text in json_objects(iter(proc.stdout.readline, ""), junk):
            try:
                events.put(json.loads(text))
            except json.JSONDecodeError:
                junk.append("unreadable JSON from iperf3")
        events.put(None)  # iperf3 closed its output: it has exited

    reader = threading.Thread(target=read, name="iperf3-server-output", daemon=True)
    reader.start()
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        _wait_listening(proc, port, events, junk, bind)
        where = f"[{bind}]" if bind and ":" in bind else (bind or "all addresses")
        say(f"iperf3 server listening on {where} port {port}"
            + (", one session" if once else "") + (f", for at most {time_limit:g}s" if time_limit else ""))
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
    except _Stop:
        say("stopped")
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
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
                    if event.get("error"):
                        message = str(event["error"]).replace("error - ", "", 1)
                        raise SelftestError(IPERF3_FAILED, f"iperf3 cannot serve on port {port}"
                                                           f"{' at ' + bind if bind else ''}: {message}")
            except queue.Empty:
                pass
            raise _exited(proc, junk)
        time.sleep(0.05)
    raise SelftestError(IPERF3_FAILED, f"iperf3 did not start listening on port {port} within {STARTUP_SECONDS:g}s")
