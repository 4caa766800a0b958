"""Buffers sized to the path on a real kernel: sysctl writes inside network namespaces we make, /etc and
/var/lib in a temporary root (`tune --root`), RAM given through a facts file, the RTT measured against a
listener in a namespace of ours."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live.test_tune_live import host_value, sysctls, tune
from tests.netns import netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns]
MIB = 2**20


def ram_facts(tmp_path: Path, mib: int) -> str:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"schema": "guestcheck.facts/1", "memory": {"total_bytes": mib * MIB}}))
    return str(facts)


def field_max(value: str) -> int:
    return int(value.split()[2])


def test_a_path_sized_apply_is_capped_by_memory_verified_and_rolled_back(tmp_path):
    host_before = host_value("net.ipv4.tcp_rmem")
    facts = ram_facts(tmp_path, 1024)  # 1/16 of 1 GiB = 64 MiB, below the 75 MB that 1 Gbit/s x 300 ms needs
    root = tmp_path / "root"
    with netns() as ns:
        before = sysctls(ns)
        out = tune(ns, root, "apply", "wan", "--rate", "1G", "--rtt", "300ms", "--facts", facts)
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        assert "ceiling: 67108864 bytes (64.0 MiB), bound by the memory (the path needs 75001856)" in out.stdout
        now = sysctls(ns)
        for key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
            assert field_max(now[key]) == max(64 * MIB, field_max(before[key]))  # raised to the cap, never lowered
        assert "left to the host: net.core.rmem_max, net.core.wmem_max" in out.stdout  # global keys: not ours here
        assert now["net.core.rmem_max"] == before["net.core.rmem_max"]
        journal = json.loads((root / "var/lib/guestcheck/tune-state.json").read_text())
        assert journal["sizing"]["ceiling_bytes"] == 64 * MIB
        assert journal["sysctl"]["net.ipv4.tcp_rmem"]["applied"] == now["net.ipv4.tcp_rmem"]
        for args in (("verify",), ("verify", "wan")):
            out = tune(ns, root, *args)
            assert out.returncode == 0 and "buffers were sized to 1.00 Gbit/s x 300 ms" in out.stdout, out.stdout
        ns.run(["sysctl", "-w", f"net.ipv4.tcp_rmem=4096 131072 {16 * MIB}"])  # the static value: not what we set
        out = tune(ns, root, "verify", "wan")
        assert out.returncode == 1 and f"live 4096 131072 {16 * MIB}, expected >4096 131072 {64 * MIB}" in out.stdout
        out = tune(ns, root, "rollback")
        assert out.returncode == 0, out.stderr
        assert sysctls(ns) == before
        assert not (root / "var/lib/guestcheck/tune-state.json").exists()
        assert not (root / "etc/sysctl.d/90-guestcheck.conf").exists()
    assert host_value("net.ipv4.tcp_rmem") == host_before


def test_a_path_the_kernel_already_covers_changes_no_buffer(tmp_path):
    """400 Mbit/s x 300 ms needs 30 MB: a kernel whose ceiling is already higher keeps its own."""
    with netns() as ns:
        before = sysctls(ns)
        ns.run(["sysctl", "-w", f"net.ipv4.tcp_rmem=4096 131072 {32 * MIB}"])
        out = tune(ns, tmp_path, "apply", "throughput", "--rate", "400M", "--rtt", "300ms",
                   "--facts", ram_facts(tmp_path, 8192))
        assert out.returncode == 0, out.stderr
        assert "ceiling: 30003200 bytes (28.6 MiB), bound by the path" in out.stdout
        assert sysctls(ns)["net.ipv4.tcp_rmem"] == f"4096 131072 {32 * MIB}"
        assert field_max(sysctls(ns)["net.ipv4.tcp_wmem"]) == max(30003200, field_max(before["net.ipv4.tcp_wmem"]))
        assert tune(ns, tmp_path, "rollback").returncode == 0
        assert sysctls(ns)["net.ipv4.tcp_wmem"] == before["net.ipv4.tcp_wmem"]


LISTENER = ("import socket, sys\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind((sys.argv[1], 0)); s.listen(64)\n"
            "print(s.getsockname()[1], flush=True)\n"
            "while True:\n"
            "    c, _ = s.accept(); c.close()\n")


def test_peer_measures_the_rtt_to_a_listener_in_our_namespace(tmp_path):
    with netns() as a, netns() as b, veth_pair(a, b):
        listener = b.popen([sys.executable, "-c", LISTENER, "10.199.0.2"], stdout=subprocess.PIPE, text=True)
        try:
            port = int(listener.stdout.readline())
            peer = f"10.199.0.2:{port}"
            facts = ram_facts(tmp_path, 8192)
            out = tune(a, tmp_path, "recommend", "--rate", "10G", "--peer", peer, "--facts", facts)
            assert out.returncode == 0, out.stderr
            print(out.stdout)
            assert "  size: path: 10.0 Gbit/s x " in out.stdout
            assert f"(measured: least of 5 TCP connects to {peer}, median " in out.stdout
            assert out.stdout.splitlines()[-1].startswith("try: guestcheck tune apply throughput --rate 10G --rtt ")
            before = sysctls(a)
            out = tune(a, tmp_path, "diff", "wan", "--rate", "10G", "--peer", peer, "--facts", facts)
            assert out.returncode == 0 and "BDP: " in out.stdout and "bound by the path" in out.stdout, out.stdout
            assert sysctls(a) == before  # diff changes nothing
            closed = tune(a, tmp_path, "diff", "wan", "--rate", "10G", "--peer", "10.199.0.2:1", "--facts", facts)
            assert closed.returncode == 0, closed.stderr  # a refused port answers too (RST): still one round trip
        finally:
            listener.kill()
            listener.wait(timeout=10)
