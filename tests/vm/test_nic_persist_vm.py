"""NIC settings that survive a reboot, in a Debian 12 guest whose udev applies .link files (net_setup_link).

Three boots of the same disk (a qcow2 overlay kept between them), each a real kernel boot with systemd's
udevd coldplugging the NICs, which is what applies .link files at boot (the image's init runs udevd and
`udevadm trigger` as systemd-udev-trigger.service does):
  1. tune queues on a multi-queue virtio-net NIC (a tap backend with 4 queue pairs, made by QEMU inside a
     network namespace of the test's: nothing leaves the machine), tune rings and tune offloads on an e1000;
  2. reboot: the settings are in force, udev says it applied guestcheck's .link file, the names are the same,
     verify passes; then rollback;
  3. reboot: udev applies 99-default.link again and the defaults are back.
virtio-net starts with min(vCPUs, max) queue pairs itself, which is also what `tune queues` sets: the queue
count after the reboot shows the .link file holds and applies, not a change only it could make. The e1000's
rings (256 by default, 4096 after tune) are the setting only the .link file can bring back.
"""

from __future__ import annotations

import shutil

import pytest

from tests.netns import netns

from . import guest

pytestmark = pytest.mark.vm

COMMON = r"""
set -u
gc() { python3 -m guestcheck tune "$@"; echo "rc=$?"; }
nic_of() { for n in /sys/class/net/*; do [ "$(basename "$(readlink -f "$n/device/driver" 2>/dev/null)")" = "$1" ] \
  && echo "$(basename "$n")"; done; }
E=$(nic_of e1000)
M=""
for n in $(nic_of virtio_net); do
  [ "$(ethtool -l "$n" | awk '/Pre-set/{p=1} p && /^Combined/{print $2; exit}')" -gt 1 ] && M=$n
done
show() {
  echo "names: $(ls /sys/class/net | tr '\n' ' ')"
  echo "E=$E M=$M"
  echo "rings: $(ethtool -g "$E" | awk '/Current/{c=1} c && /^(RX|TX):/{printf "%s%s ", $1, $2}')"
  echo "offloads: $(ethtool -k "$E" \
    | grep -E '^(scatter-gather|tcp-segmentation-offload|generic-segmentation-offload):' \
    | awk '{printf "%s%s ", $1, $2}')"
  echo "combined: $(ethtool -l "$M" | awk '/Current/{c=1} c && /^Combined/{print $2}')"
  for n in "$E" "$M"; do
    echo "linkfile $n: $(udevadm info -q property -p "/sys/class/net/$n" | grep ID_NET_LINK_FILE=)"
  done
}
"""

BOOT1 = COMMON + r"""
ethtool -K "$E" sg off tso off gso off
ethtool -L "$M" combined 1
show
echo "== queues"; gc queues "$M"
echo "== rings"; gc rings "$E"
echo "== offloads"; gc offloads "$E"
echo "== verify"; gc verify
show
for f in /etc/systemd/network/* /etc/udev/rules.d/90-guestcheck-*; do echo "== $f"; cat "$f"; done
"""

BOOT2 = COMMON + r"""
show
echo "== verify"; gc verify
echo "== rollback"; gc rollback
show
"""

BOOT3 = COMMON + r"""
show
ls /etc/systemd/network /etc/udev/rules.d
"""


def line(out: str, prefix: str, nth: int = 0) -> str:
    return [ln for ln in out.splitlines() if ln.startswith(prefix)][nth]


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2")
def test_nic_settings_survive_a_reboot_and_rollback_brings_the_defaults_back(vm_image, tmp_path) -> None:
    disk = tmp_path / "guest.qcow2"
    nics = ["-netdev", "tap,id=mq,ifname=gcmq0,script=no,downscript=no,queues=4,vhost=off",
            "-device", "virtio-net-pci,netdev=mq,mq=on,vectors=10",
            "-netdev", "user,id=e1,restrict=on", "-device", "e1000,netdev=e1"]
    outs = []
    with netns("gcvm") as ns:
        for script in (BOOT1, BOOT2, BOOT3):
            r = guest.run_in_guest(script, cpus=2, memory_mb=1024, timeout=400, disk=disk,
                                   extra_qemu_args=nics, wrapper=["ip", "netns", "exec", ns.name])
            print(f"--- boot ({r.wall_seconds:.0f} s)\n{r.stdout}\n{r.stderr}")
            assert r.exit_code == 0, r.stderr
            outs.append(r.stdout)
    one, two, three = outs
    e, m = line(one, "E=").split()
    e, m = e[2:], m[2:]
    assert e and m, one
    # boot 1: the changes
    assert line(one, "rings: ") == "rings: RX:256 TX:256 "
    assert line(one, "rings: ", 1) == "rings: RX:4096 TX:4096 "
    assert line(one, "combined: ") == "combined: 1" and line(one, "combined: ", 1) == "combined: 2"
    assert line(one, "offloads: ") == ("offloads: scatter-gather:off tcp-segmentation-offload:off "
                                       "generic-segmentation-offload:off ")
    assert line(one, "offloads: ", 1) == ("offloads: scatter-gather:on tcp-segmentation-offload:on "
                                          "generic-segmentation-offload:on ")
    assert one.count("rc=0") == 4 and "verified" in one
    assert f"persisted for the next boot in /etc/systemd/network/50-guestcheck-{e}.link (replaces " \
           "/usr/lib/systemd/network/99-default.link" in one
    assert "RxBufferSize=4096" in one and "TxBufferSize=4096" in one and "CombinedChannels=2" in one
    assert "NamePolicy=keep kernel database onboard slot path" in one
    assert "/usr/sbin/ethtool -K $name tx-scatter-gather on" in one
    # boot 2: the same names, guestcheck's .link files applied by udev, the values in force, verify passes
    assert line(two, "names: ") == line(one, "names: ")
    for n in (e, m):
        assert line(two, f"linkfile {n}: ").endswith(f"ID_NET_LINK_FILE=/etc/systemd/network/50-guestcheck-{n}.link")
    assert line(two, "rings: ") == "rings: RX:4096 TX:4096 "
    assert line(two, "offloads: ") == line(one, "offloads: ", 1)
    assert line(two, "combined: ") == "combined: 2"
    assert "NOT in force" not in two and line(two, "rc=") == "rc=0"
    assert "rolled back:" in two and two.count("rc=0") == 2
    assert line(two, "rings: ", 1) == "rings: RX:256 TX:256 "  # the originals, live
    # boot 3: the distribution's defaults
    assert line(three, "names: ") == line(one, "names: ")
    assert line(three, f"linkfile {e}: ").endswith("ID_NET_LINK_FILE=/usr/lib/systemd/network/99-default.link")
    assert line(three, "rings: ") == "rings: RX:256 TX:256 "
    assert "50-guestcheck" not in three and "90-guestcheck" not in three
