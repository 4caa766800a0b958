"""Fleet metrics shown with the real thing: Debian's prometheus-node-exporter serves guestcheck.prom on loopback.

node_exporter's textfile collector parses our file with the same library Prometheus uses; a file it
rejects shows up as node_textfile_scrape_error 1 and none of its metrics are served.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.fakemachine import REPO, FakeMachine
from tests.unit.test_prometheus import parse

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
pytestmark = pytest.mark.skipif(NODE_EXPORTER is None, reason="needs prometheus-node-exporter (apt)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def node_exporter(textfile_dir: Path) -> Iterator[str]:
    """A node_exporter with only the textfile collector, on 127.0.0.1; yields its /metrics URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    proc = subprocess.Popen(
        [str(NODE_EXPORTER), f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
         "--collector.textfile", f"--collector.textfile.directory={textfile_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                scrape(url)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = proc.stderr.read() if proc.stderr and proc.poll() is not None else "no answer in 20 s"
                    raise RuntimeError(f"node_exporter did not start: {why}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode("utf-8")


def guestcheck_lines(exposition: str) -> str:
    keep = [ln for ln in exposition.splitlines()
            if ln.startswith(("guestcheck_", "# HELP guestcheck_", "# TYPE guestcheck_"))]
    return "\n".join(keep) + "\n"


def doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guestcheck", "doctor", *args], capture_output=True, text=True,
                          timeout=120, cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)})


def test_this_machine_served_by_node_exporter(tmp_path):
    """The doctor on this very machine writes the textfile; node_exporter serves exactly its series."""
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()  # node_exporter's directory exists before guestcheck writes into it
    out = doctor("--sample", "0.2", "--textfile-dir", str(textfiles))
    assert out.returncode in (0, 1, 2, 3) and "Traceback" not in out.stderr, out.stderr
    written = parse((textfiles / "guestcheck.prom").read_text())
    with node_exporter(textfiles) as url:
        exposition = scrape(url)
    print("\n" + guestcheck_lines(exposition), end="")
    assert "node_textfile_scrape_error 0" in exposition
    served = parse(guestcheck_lines(exposition))
    assert sorted(served, key=repr) == sorted(written, key=repr)
    status = [(labels["status"], value) for name, labels, value in served if name == "guestcheck_status"]
    assert len(status) == 1 and status[0][1] == out.returncode
    assert any(name == "guestcheck_check_severity" for name, _, _ in served)


def test_emulated_nic_and_awkward_names_survive_node_exporter(tmp_path):
    """Finding subjects are interface names, which may hold quotes and backslashes: escaped, served, read back."""
    machine = FakeMachine(tmp_path / "root")
    machine.set_dmi(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)")
    awkward = 'e1k"q\\x'
    machine.add_nic(awkward, driver="e1000", pci_id="8086:100e", ifindex=2, mac="52:54:00:12:34:56")
    machine.add_nic("ens4", driver="virtio_net", bus="virtio", virtio_parent_pci="1af4:1000", ifindex=3,
                    mac="52:54:00:12:34:57")
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(machine.collect().to_dict()))
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    out = doctor("--facts", str(facts), "--textfile-dir", str(textfiles))
    assert out.returncode == 2, out.stderr
    with node_exporter(textfiles) as url:
        exposition = scrape(url)
    print("\n" + guestcheck_lines(exposition), end="")
    assert "node_textfile_scrape_error 0" in exposition
    served = parse(guestcheck_lines(exposition))
    checks = {(lb["id"], lb["subject"]): (lb["severity"], v) for n, lb, v in served if n == "guestcheck_check_severity"}
    assert checks[("NIC-EMULATED", awkward)] == ("critical", 3.0)
    assert checks[("NIC-PARAVIRTUAL", "ens4")] == ("ok", 0.0)
    assert ("NIC-EMULATED", "ens4") not in checks
    assert ("guestcheck_status", {"status": "critical"}, 2.0) in served


def test_a_broken_textfile_is_visible_as_a_scrape_error(tmp_path):
    """The control: node_exporter really validates, so the two tests above prove something."""
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    (textfiles / "guestcheck.prom").write_text('guestcheck_status{status="ok} 0\n')
    with node_exporter(textfiles) as url:
        exposition = scrape(url)
    assert "node_textfile_scrape_error 1" in exposition
    assert "guestcheck_status" not in exposition
