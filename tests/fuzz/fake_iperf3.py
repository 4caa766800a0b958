"""A scripted `iperf3` put first on PATH, so selftest runs its real code path (argv, iperf3.py, the verdict,
the document) against replies a test chose, and nothing leaves loopback.

The fake is a small Python script. As a client (`-c`) it prints the next scripted reply (stdout bytes,
stderr bytes, exit status) and touches no network. As a server (`-s`) it listens on 127.0.0.1 only, at the
port it was given, prints the scripted stream of per-test JSON, then waits to be killed or exits. Every
call is logged, so a test can prove that bad input never reached iperf3.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

SCRIPT = r'''#!@PYTHON@
import json, os, socket, sys, time
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
with open(os.path.join(here, "calls.log"), "a") as log:
    log.write(json.dumps(args) + "\n")
if "--help" in args:
    print("Usage: iperf3 [-s|-c host] [options]\n  --connect-timeout #\n  --snd-timeout #\n"
          "  --rcv-timeout #\n  --extra-data str")
    sys.exit(1)
if "-c" in args:
    counter = os.path.join(here, "client.count")
    n = int(open(counter).read()) if os.path.exists(counter) else 0
    with open(counter, "w") as f:
        f.write(str(n + 1))
    replies = sorted(name for name in os.listdir(here) if name.startswith("client-") and name.endswith(".out"))
    stem = os.path.join(here, replies[min(n, len(replies) - 1)][:-4])
    sys.stdout.buffer.write(open(stem + ".out", "rb").read())
    sys.stderr.buffer.write(open(stem + ".err", "rb").read())
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(int(open(stem + ".code").read()))
if "-s" in args:
    port = int(args[args.index("-p") + 1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    with open(os.path.join(here, "server.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(0.2)  # guestcheck sees the listener before the results come
    sys.stdout.buffer.write(open(os.path.join(here, "server.out"), "rb").read())
    sys.stdout.flush()
    then = open(os.path.join(here, "server.then")).read()
    time.sleep(0.3 if then == "exit" else 60)
    sys.exit(1)
sys.exit(2)
'''


@dataclass
class Reply:
    stdout: bytes
    stderr: bytes = b""
    code: int = 0


class FakeIperf3:
    """A directory holding the fake `iperf3` and its script; `env` puts it first on PATH."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        binary = self.dir / "iperf3"
        binary.write_text(SCRIPT.replace("@PYTHON@", sys.executable))
        binary.chmod(0o755)

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def reset(self) -> None:
        for path in self.dir.iterdir():
            if path.name != "iperf3":
                path.unlink()

    def script_client(self, replies: Sequence[Reply]) -> None:
        """Run K of the client gets replies[K] (the last one repeats)."""
        self.reset()
        for index, reply in enumerate(replies):
            stem = self.dir / f"client-{index:03d}"
            stem.with_suffix(".out").write_bytes(reply.stdout)
            stem.with_suffix(".err").write_bytes(reply.stderr)
            stem.with_suffix(".code").write_text(str(reply.code))

    def script_server(self, stream: bytes, *, then_exit: bool) -> None:
        """The server prints `stream` once listening, then exits (then_exit) or waits to be killed."""
        self.reset()
        (self.dir / "server.out").write_bytes(stream)
        (self.dir / "server.then").write_text("exit" if then_exit else "wait")

    def calls(self) -> list[list[str]]:
        log = self.dir / "calls.log"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def ran(self, flag: str) -> bool:
        """Whether iperf3 was run as a client (-c) or server (-s): whether selftest got as far as iperf3."""
        return any(flag in call for call in self.calls())

    def server_pid(self) -> Optional[int]:
        path = self.dir / "server.pid"
        return int(path.read_text()) if path.exists() else None


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
