"""selftest's exit codes: one per outcome, so a script can tell a refused port from a busy server.

0-2 mirror doctor's Nagios codes (ok / warning / critical) for the verdict of a finished test, 4 is a latency-only
failure; faults start at 10 so they never read as a verdict, and 20 is a finished test whose latency phase found no
port to probe. Documented in README.md ("Self-test").
"""

from __future__ import annotations

from typing import Optional

NEAR = 0
BELOW = 1
FAR_BELOW = 2
LATENCY = 4
UNREACHABLE = 10
REFUSED = 11
BUSY = 12
PEER_DIED = 13
NAME = 14
BAD_INPUT = 15
IPERF3_MISSING = 16
EXPECT_UNKNOWN = 17
IPERF3_FAILED = 18
FILE_ERROR = 19
NO_PROBE = 20

EXIT_CODES: dict[int, tuple[str, str]] = {
    NEAR: ("near", "the test ran; throughput is near line rate"),
    BELOW: ("below", "the test ran; throughput is below line rate"),
    FAR_BELOW: ("far-below", "the test ran; throughput is far below line rate"),
    LATENCY: ("latency", "the test ran; throughput is near line rate, but the latency it adds is over the target"),
    UNREACHABLE: ("unreachable", "the peer did not answer (no route, or connect timed out)"),
    REFUSED: ("refused", "the peer refused the connection: nothing listens on that port"),
    BUSY: ("busy", "the peer's iperf3 server is busy running a test"),
    PEER_DIED: ("peer-died", "the peer went away or stopped answering during a test"),
    NAME: ("name", "the peer's name does not resolve"),
    BAD_INPUT: ("bad-input", "malformed option: rate, duration, peer, or options that do not go together"),
    IPERF3_MISSING: ("iperf3-missing", "iperf3 is not installed"),
    EXPECT_UNKNOWN: ("expect-unknown", "the NIC's speed is unknown: pass --expect RATE"),
    IPERF3_FAILED: ("iperf3-failed", "iperf3 failed in another way (its message is shown)"),
    FILE_ERROR: ("file", "--save or --compare could not write or read its file"),
    NO_PROBE: ("no-probe-port", "the test ran; throughput is near line rate, but no port answered the latency "
                                "probes, so latency was not measured"),
}


class SelftestError(Exception):
    """A fault with its exit code; `runs` carries what was measured before it happened."""

    def __init__(self, code: int, message: str, runs: Optional[list] = None) -> None:
        super().__init__(" ".join(message.split()))  # always one line
        self.code = code
        self.runs = list(runs or [])

    @property
    def kind(self) -> str:
        return EXIT_CODES[self.code][0]

    @property
    def message(self) -> str:
        return str(self)
