"""The tuner in a real Debian 12 guest's own namespace: fq and bbr loaded as modules, global keys written,
doctor's memory guard passing, and rollback back to the kernel's defaults. One boot."""

from __future__ import annotations

import pytest

from . import guest

SCRIPT = r"""
set -u
gc() { python3 -m guestcheck tune --root /tmp/gcroot "$@"; echo "rc=$?"; }
show() {
  echo "live: $(sysctl -n net.core.default_qdisc net.ipv4.tcp_congestion_control net.core.rmem_max \
    net.ipv4.tcp_rmem | tr '\t\n' '  ' | sed 's/ *$//')"
}
show
echo "== diff latency"; gc diff latency
echo "== apply latency"; gc apply latency
show
echo "== verify"; gc verify
echo "== apply throughput"; gc apply throughput
show
echo "== rollback"; gc rollback
show
"""


@pytest.mark.vm
def test_latency_and_throughput_in_a_guest_then_rollback(vm_image: guest.Image) -> None:
    result = guest.run_in_guest(SCRIPT, cpus=1, memory_mb=2048, timeout=300)
    out = result.stdout
    print(out)
    assert result.exit_code == 0, result.stderr
    live = [line for line in out.splitlines() if line.startswith("live: ")]
    original = live[0]
    qdisc = original.split()[1]
    assert original == f"live: {qdisc} cubic 212992 4096 131072 6291456"  # Debian 12's kernel defaults
    assert f"set      net.core.default_qdisc: {qdisc} -> fq" in out  # sch_fq is a module, not loaded yet
    assert "set      net.ipv4.tcp_congestion_control: cubic -> bbr" in out
    assert live[1] == "live: fq bbr 212992 4096 131072 6291456"
    assert "latency: verified" in out
    # throughput over latency: fq/bbr go back, the buffers go up (global keys: this is the initial namespace)
    assert live[2] == f"live: {qdisc} cubic 16777216 4096 131072 16777216"
    assert "memory guard overridden" not in out and "refusing" not in out
    assert live[3] == original
    assert out.count("rc=0") == 5
