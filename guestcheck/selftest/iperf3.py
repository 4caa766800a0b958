"""Run the real iperf3 client from an argv list and read its `-J` JSON into one RunResult.

iperf3 can hang on a silent peer, so every run is bounded three ways: iperf3's own --connect-timeout,
--snd-timeout (TCP_USER_TIMEOUT on the data streams) and --rcv-timeout (receiving side only: iperf3 3.12
refuses it on a sending client), each set when `iperf3 --help` lists it; then a hard limit after which
the whole process group is killed. iperf3 3.12 exits 0 even when its JSON reports an error, so the
JSON's "error" decides, never the exit status.

The JSON carries the peer's figures (server_output_json, the remote CPU) and text from the network, so
every value is read through guestcheck.selftest.untrusted: a wrong type or an absurd number is "not
reported" where the figure is optional, and an iperf3-failed fault where the verdict needs it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Sequence

from guestcheck.selftest.children import die_with_parent
from guestcheck.selftest.errors import (
    BUSY,
    IPERF3_FAILED,
    IPERF3_MISSING,
    PEER_DIED,
    REFUSED,
    UNREACHABLE,
    SelftestError,
)
from guestcheck.selftest.untrusted import as_dict, as_list, load_object, number, printable, text, whole

TIMEOUT_OPTIONS = ("--connect-timeout", "--snd-timeout", "--rcv-timeout", "--extra-data")
UPLOAD, DOWNLOAD = "upload", "download"
MAX_MEASURED_BPS = 1e15  # 1 Pbit/s: a figure above it is not a measurement
MAX_RTT_US = 1e9  # 1000 s
MAX_CPU_PERCENT = 1e4
MAX_SECONDS = 1e6
MAX_COUNT = 2**63 - 1
MAX_STREAMS = 128  # iperf3's own limit on -P
# where packages put iperf3: a systemd unit, cron or `sudo` (secure_path) may run us with a PATH without it
USUAL_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def install_iperf3() -> str:
    """This distribution's command (only read when iperf3 is missing: distro costs ~30 ms to import)."""
    from guestcheck.collect.osrelease import os_info
    from guestcheck.distros import install_command
    from guestcheck.roots import Roots

    system = os_info(Roots.from_env())
    return install_command("iperf3", system.id, system.like)


def find_iperf3() -> str:
    """iperf3 on PATH; when it is installed but not on PATH, the error says where it is rather than
    "not installed" (installing it again would not help)."""
    from guestcheck.roots import Roots

    path = shutil.which("iperf3")
    if path is not None:
        return path
    top = Roots.from_env().top  # a test's fake machine has its own /usr/bin
    elsewhere = next((p for p in (os.path.join(top, d.lstrip("/"), "iperf3") for d in USUAL_BIN_DIRS)
                      if os.path.isfile(p) and os.access(p, os.X_OK)), None)
    if elsewhere is not None:
        raise SelftestError(IPERF3_MISSING, printable(
            f"iperf3 is installed as {elsewhere} but is not on PATH: add {os.path.dirname(elsewhere)} to PATH "
            f"(it is {os.environ.get('PATH', '')!r})", 400))
    raise SelftestError(IPERF3_MISSING, f"iperf3 is not installed: install it with `{install_iperf3()}`")


@functools.cache
def supported_options(binary: str) -> frozenset[str]:
    """The timeout options this iperf3 knows, read from its --help (feature-test, not version-test)."""
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, errors="replace", timeout=3,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    text = out.stdout + out.stderr
    return frozenset(opt for opt in TIMEOUT_OPTIONS if opt in text)


@dataclass(frozen=True)
class RunSpec:
    address: str
    port: int
    direction: str  # upload (client sends) | download (-R: the peer sends)
    streams: int
    duration: int  # whole seconds, what iperf3 -t takes
    timeout: float  # seconds of silence tolerated
    tag: str = ""  # --extra-data: lets `selftest --serve --once` see the last run of a session
    congestion: str = ""  # iperf3 -C: the congestion control both ends use (the bench's CUBIC); "": the default

    @property
    def hard_limit(self) -> float:
        """Connect budget + the test + the silence budget + a second for the results exchange."""
        return self.timeout + self.duration + self.timeout + 1


@dataclass
class RunResult:
    direction: str
    streams: int
    throughput_bps: float  # what the receiver got: the honest figure
    sent_bps: float
    retransmits: Optional[int]
    cpu_local_percent: Optional[float]
    cpu_remote_percent: Optional[float]
    rtt_mean_ms: Optional[float]  # iperf3's TCP info (the sender's smoothed RTT), mean over streams
    rtt_min_ms: Optional[float]
    rtt_max_ms: Optional[float]
    seconds: float  # iperf3's measured interval
    wall_seconds: float  # the whole iperf3 process, start to exit
    iperf3_version: str = ""
    congestion: str = ""  # the sender's congestion control as iperf3 reported it; "" when it did not

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def client_argv(binary: str, spec: RunSpec, options: frozenset[str]) -> list[str]:
    ms = str(max(1, round(spec.timeout * 1000)))  # 0.57 s is 570 ms, not int()'s 569
    argv = [binary, "-c", spec.address, "-p", str(spec.port), "-J", "-t", str(spec.duration),
            "-P", str(spec.streams)]
    if spec.direction == DOWNLOAD:
        argv += ["-R", "--get-server-output"]  # the peer is the sender: its JSON has the RTT
    if "--connect-timeout" in options:
        argv += ["--connect-timeout", ms]
    if "--snd-timeout" in options:
        argv += ["--snd-timeout", ms]
    if spec.direction == DOWNLOAD and "--rcv-timeout" in options:
        argv += ["--rcv-timeout", ms]
    if spec.congestion:
        argv += ["-C", spec.congestion]
    if spec.tag and "--extra-data" in options:
        argv += ["--extra-data", spec.tag]
    return argv


@dataclass
class Completed:
    stdout: str
    stderr: str
    wall_seconds: float
    timed_out: bool


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group we started; the group may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


TICK_SECONDS = 1.0


def _communicate(proc: subprocess.Popen, hard_limit: float,
                 tick: Optional[Callable[[int], None]]) -> tuple[str, str]:
    """proc.communicate() within the hard limit; with `tick`, woken every TICK_SECONDS to call tick(pid)
    (communicate may be called again after its timeout without losing output)."""
    deadline = time.monotonic() + hard_limit
    while True:
        left = deadline - time.monotonic()
        try:
            return proc.communicate(timeout=max(0.0, left if tick is None else min(left, TICK_SECONDS)))
        except subprocess.TimeoutExpired:
            if tick is None or time.monotonic() >= deadline:
                raise
            tick(proc.pid)


def run_process(argv: Sequence[str], hard_limit: float, tick: Optional[Callable[[int], None]] = None) -> Completed:
    """Run in its own process group; kill the group at the hard limit or if we are interrupted.
    `tick(pid)` is called about once a second while it runs (selftest's progress line)."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True,
                            preexec_fn=die_with_parent())
    try:
        try:
            out, err = _communicate(proc, hard_limit, tick)
            timed_out = False
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = proc.communicate()
            timed_out = True
    finally:
        if proc.poll() is None:  # KeyboardInterrupt or another error: leave nothing running
            kill_group(proc)
            proc.wait()
    return Completed(out or "", err or "", time.perf_counter() - start, timed_out)


def first_json_object(text: str) -> Optional[dict[str, Any]]:
    """iperf3 may print a warning line before its JSON: decode from the first '{'."""
    start = text.find("{")
    return load_object(text, start) if start >= 0 else None


def _rtts_ms(streams: Any) -> list[tuple[float, float, float]]:
    """(mean, min, max) per stream from the sender's TCP info, microseconds -> ms; 0 means not measured."""
    out = []
    for stream in as_list(streams):
        sender = as_dict(as_dict(stream).get("sender"))
        mean, lo, hi = (number(sender.get(k), 0, MAX_RTT_US) for k in ("mean_rtt", "min_rtt", "max_rtt"))
        if mean:
            out.append((mean / 1000, (lo or mean) / 1000, (hi or mean) / 1000))
    return out


def parse_run(doc: dict[str, Any], direction: str, streams: int, wall_seconds: float,
              requested_congestion: str = "") -> RunResult:
    """The figures a verdict needs from one client JSON document (no "error" in it)."""
    end = as_dict(doc.get("end"))
    # the sender's congestion control: ours on an upload; on a download the peer's, which only its JSON says
    sender_end = end if direction == UPLOAD else as_dict(as_dict(doc.get("server_output_json")).get("end"))
    congestion = text(sender_end.get("sender_tcp_congestion"), 16) or requested_congestion
    received, sent = as_dict(end.get("sum_received")), as_dict(end.get("sum_sent"))
    cpu = as_dict(end.get("cpu_utilization_percent"))
    rtt_source = end.get("streams")
    if direction == DOWNLOAD:  # we received: the sender's TCP info is in the server's own JSON
        rtt_source = as_dict(as_dict(doc.get("server_output_json")).get("end")).get("streams")
    rtts = _rtts_ms(rtt_source)
    throughput = number(received.get("bits_per_second"), 0, MAX_MEASURED_BPS)
    if throughput is None:
        raise SelftestError(IPERF3_FAILED, "iperf3's JSON has no end.sum_received.bits_per_second from 0 to "
                                           f"{MAX_MEASURED_BPS:g}")
    return RunResult(
        direction=direction,
        streams=streams,
        throughput_bps=throughput,
        sent_bps=number(sent.get("bits_per_second"), 0, MAX_MEASURED_BPS) or 0.0,
        retransmits=whole(sent.get("retransmits"), 0, MAX_COUNT),
        cpu_local_percent=number(cpu.get("host_total"), 0, MAX_CPU_PERCENT),
        cpu_remote_percent=number(cpu.get("remote_total"), 0, MAX_CPU_PERCENT),
        rtt_mean_ms=sum(r[0] for r in rtts) / len(rtts) if rtts else None,
        rtt_min_ms=min(r[1] for r in rtts) if rtts else None,
        rtt_max_ms=max(r[2] for r in rtts) if rtts else None,
        seconds=number(received.get("seconds"), 0, MAX_SECONDS) or 0.0,
        wall_seconds=wall_seconds,
        iperf3_version=text(as_dict(doc.get("start")).get("version"), 64) or "",
        congestion=congestion,
    )


_DIED = ("closed unexpectedly", "stream socket", "idle timeout", "unable to receive", "unable to send",
         "reset by peer", "broken pipe", "unable to connect stream", "unable to read", "unable to write")


def classify(message: str, started: bool, peer: str) -> SelftestError:
    """Turn iperf3's error text into our fault with its exit code."""
    text = printable(message)
    low = text.lower()
    if "busy" in low:
        return SelftestError(BUSY, f"{peer}: the server is busy running a test; try again later "
                                   f"(iperf3: {text})")
    if "unable to connect to server" in low:
        if "refused" in low:
            return SelftestError(REFUSED, f"{peer} refused the connection: nothing listens on that port; start "
                                          f"`guestcheck selftest --serve` or `iperf3 -s` there (iperf3: {text})")
        if "reset by peer" in low:  # the kernel completed the handshake, then the listener closed: what iperf3
            # does between two tests (cleanup_server), so a refusal in all but timing, and retried as one
            return SelftestError(REFUSED, f"{peer} reset the connection before the test began: nothing serves "
                                          f"that port now; start `guestcheck selftest --serve` or `iperf3 -s` "
                                          f"there (iperf3: {text})")
        return SelftestError(UNREACHABLE, f"{peer} is unreachable (iperf3: {text})")
    if started or any(p in low for p in _DIED):
        return SelftestError(PEER_DIED, f"{peer} went away during the test (iperf3: {text})")
    return SelftestError(IPERF3_FAILED, f"iperf3 failed against {peer}: {text}")


def run_client(binary: str, spec: RunSpec, peer: str, tick: Optional[Callable[[int], None]] = None) -> RunResult:
    """One iperf3 run; a SelftestError with the right exit code for every way it can fail."""
    argv = client_argv(binary, spec, supported_options(binary))
    done = run_process(argv, spec.hard_limit, tick)
    doc = first_json_object(done.stdout)
    if done.timed_out:
        raise SelftestError(PEER_DIED, f"{peer} stopped answering: iperf3 had no result after "
                                       f"{spec.hard_limit:g}s and was killed")
    if doc is None:
        reason = next((line for line in done.stderr.splitlines() if line.strip()), "no output")
        raise classify(reason.replace("iperf3: ", "", 1), False, peer)
    error = doc.get("error")
    if error:
        start = as_dict(doc.get("start"))
        started = bool(as_list(start.get("connected"))) or bool(as_list(doc.get("intervals")))
        if not isinstance(error, str):
            raise SelftestError(IPERF3_FAILED, f"iperf3 failed against {peer}: its JSON has an error that is "
                                               f"not text ({type(error).__name__})")
        raise classify(error, started, peer)
    return parse_run(doc, spec.direction, spec.streams, done.wall_seconds, spec.congestion)
