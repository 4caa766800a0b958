"""The harness itself: one boot per NIC model, checking the guest sees the real driver."""

from __future__ import annotations

import pytest

from . import guest

# The brief's probe: driver via sysfs and via ethtool of the first non-lo interface.
PROBE = (
    "cat /sys/class/net/*/device/../driver 2>/dev/null; "
    "readlink /sys/class/net/*/device/driver; "
    "ethtool -i $(ls /sys/class/net | grep -v lo | head -1)"
)


@pytest.mark.vm
@pytest.mark.parametrize(("nic_model", "driver"), [("e1000", "e1000"), ("virtio-net-pci", "virtio_net")])
def test_guest_sees_nic_driver(vm_image: guest.Image, nic_model: str, driver: str) -> None:
    result = guest.run_in_guest(PROBE, nic_model=nic_model, timeout=300)
    print(
        f"\n{nic_model}: boot {result.boot_seconds:.1f} s (guest uptime at command start), "
        f"total {result.wall_seconds:.1f} s wall"
    )
    assert result.exit_code == 0, result.stderr + guest._tail(result.serial_log)
    assert result.link_state == "up"  # the harness waited for the link before running the command
    assert f"driver: {driver}\n" in result.stdout
    assert any(line.endswith(f"/{driver}") for line in result.stdout.splitlines())
    assert "===GUESTVM-STDOUT-BEGIN===" in result.serial_log
