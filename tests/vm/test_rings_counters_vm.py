"""Rings and driver counters in a QEMU guest (one boot, virtio-net plus an e1000): RX rings lowered with
`ethtool -G` give the ring finding with the device's real maximum, its fix restores it; the virtio NIC's
per-queue packet and byte counters (virtio_net.c rx_queue_N_* / tx_queue_N_* on the guest's 6.1 kernel) move
with traffic to the slirp gateway. Runs tests/vm/rings_counters_guest.py."""

from __future__ import annotations

import json
import re

import pytest

from . import guest

pytestmark = pytest.mark.vm

E1000 = ["-netdev", "user,id=gcring,restrict=on", "-device", "e1000,netdev=gcring"]


@pytest.fixture(scope="module")
def run(vm_image) -> dict:
    result = guest.run_in_guest("python3 tests/vm/rings_counters_guest.py", extra_qemu_args=E1000, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr[-2000:])
    return json.loads(result.stdout)


def rx_max(ethtool_g: str) -> int:
    """The RX line under "Pre-set maximums" of `ethtool -g`."""
    return int(re.search(r"maximums:\s*\nRX:\s+(\d+)", ethtool_g).group(1))


def test_lowered_rings_are_found_with_the_devices_maximum_and_the_fix_restores_it(run):
    lowered, fixed = run["lowered"], run["fixed"]
    for name in (run["virtio"], run["e1000"]):
        assert run["lower"][name]["rc"] == 0, run["lower"][name]
        maximum = rx_max(run["g_before"][name])
        rings = lowered["rings"][name]
        assert rings["rx_max"] == maximum and rings["rx"] < maximum // 4, rings
        finding = lowered["findings"][name]
        assert (finding["id"], finding["severity"]) == ("RING-RX-SMALL", "info")
        assert finding["fix"] == f"ethtool -G {name} rx {maximum}"
        assert run["fixes"][name]["rc"] == 0, run["fixes"][name]
        assert fixed["rings"][name]["rx"] == maximum
    assert rx_max(run["g_before"][run["e1000"]]) == 4096  # e1000_main.c E1000_MAX_RXD
    # after the fix only the ok line is left (RING-RX-OK, what `doctor -v` shows for a ring with room)
    assert {name: f["id"] for name, f in fixed["findings"].items()} == \
        {run["virtio"]: "RING-RX-OK", run["e1000"]: "RING-RX-OK"}, fixed["findings"]


def test_virtio_per_queue_packet_and_byte_counters_move_with_traffic(run):
    before, after = run["traffic"]["before"], run["traffic"]["after"]
    assert after["tx_queue_0_packets"] - before["tx_queue_0_packets"] >= 300
    assert after["tx_queue_0_bytes"] - before["tx_queue_0_bytes"] >= 300 * (100 + 8 + 20 + 14)
    assert after["rx_queue_0_packets"] >= before["rx_queue_0_packets"]
    # doctor's numbers are the driver's: each name `ethtool -S` printed a moment later, none moved backwards
    shell = {k.strip(): int(v) for k, v in re.findall(r"^\s*(\S+): (\d+)$", run["traffic"]["ethtool_after"], re.M)}
    assert set(shell) == set(after) and all(shell[k] >= after[k] for k in after)
    counters = run["traffic"]["counters_after"]
    assert set(counters["driver"]) == {"rx_queue_0_drops", "tx_queue_0_xdp_tx_drops"}
