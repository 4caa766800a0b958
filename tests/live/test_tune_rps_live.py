"""`guestcheck tune rps` on a real kernel: a veth with two receive queues inside a namespace we make, the rule
file and the journal in a temporary root (`tune --root TMP`: /sys stays the namespace's own, /etc and /var/lib
go to TMP), so nothing here touches the machine's own interfaces or files."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.live.test_tune_live import tune
from tests.netns import Netns, netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")]
RULE = "etc/udev/rules.d/90-guestcheck-gcr0.rules"



def masks(ns: Netns, dev: str = "gcr0") -> dict[str, set[int]]:
    """Each receive queue's rps_cpus as the kernel reads it back, as a set of CPUs."""
    out = ns.run(["sh", "-c", f'for q in /sys/class/net/{dev}/queues/rx-*; do echo "${{q##*/}} $(cat $q/rps_cpus)"; '
                              "done"])
    found = {}
    for line in out.stdout.splitlines():
        queue, mask = line.split()
        value = int(mask.replace(",", ""), 16)
        found[queue] = {cpu for cpu in range(value.bit_length()) if value >> cpu & 1}
    return found


def online(ns: Netns) -> set[int]:
    text = ns.run(["cat", "/sys/devices/system/cpu/online"]).stdout.strip()
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def two_queue_veth(a: Netns, b: Netns) -> None:
    a.ip("link", "add", "gcr0", "numtxqueues", "2", "numrxqueues", "2", "type", "veth",
         "peer", "name", "gcr1", "numtxqueues", "2", "numrxqueues", "2", "netns", b.name)
    a.ip("link", "set", "gcr0", "up")
    b.ip("link", "set", "gcr1", "up")


def test_rps_set_read_back_verified_and_rolled_back_with_the_rule_file(tmp_path):
    before_rule = b"# an admin's rule, not UTF-8: caf\xe9\n"
    rule = tmp_path / RULE
    rule.parent.mkdir(parents=True)
    rule.write_bytes(before_rule)
    with netns() as a, netns() as b:
        two_queue_veth(a, b)
        a.run(["sh", "-c", "echo 1 > /sys/class/net/gcr0/queues/rx-1/rps_cpus"])  # an original that is not off
        original = masks(a)
        assert original == {"rx-0": set(), "rx-1": {0}}
        cpus = online(a)
        dry = tune(a, tmp_path, "rps", "gcr0", "--dry-run")
        assert dry.returncode == 0 and "would set rx-0" in dry.stdout and masks(a) == original
        out = tune(a, tmp_path, "rps", "gcr0")
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        assert masks(a) == {"rx-0": cpus, "rx-1": cpus}  # read back from the kernel
        text = rule.read_text()
        mask = format(sum(1 << c for c in cpus), "x")
        assert ('ACTION=="add", SUBSYSTEM=="net", KERNEL=="gcr0", ATTR{queues/rx-0/rps_cpus}="' + mask + '", '
                'ATTR{queues/rx-1/rps_cpus}="' + mask + '"') in text
        assert not (tmp_path / "etc/systemd/network/50-guestcheck-gcr0.link").exists()
        ok = tune(a, tmp_path, "verify")
        assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "rps: verified", ok.stdout
        a.run(["sh", "-c", "echo 0 > /sys/class/net/gcr0/queues/rx-0/rps_cpus"])  # drift, live
        drift = tune(a, tmp_path, "verify")
        assert drift.returncode == 1 and "DIFF gcr0 rx-0: live 0 (off)" in drift.stdout, drift.stdout
        back = tune(a, tmp_path, "rollback")
        assert back.returncode == 0, back.stderr
        assert masks(a) == original
        assert rule.read_bytes() == before_rule  # the file that was there, byte for byte
        assert not (tmp_path / "var/lib/guestcheck/tune-state.json").exists()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="--cpus 1 needs a second CPU")
def test_rps_cpus_list_no_persist_and_a_queue_removed_before_rollback(tmp_path):
    with netns() as a, netns() as b:
        two_queue_veth(a, b)
        bad = tune(a, tmp_path, "rps", "gcr0", "--cpus", "0-4095")
        assert bad.returncode == 3 and "are not online" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        out = tune(a, tmp_path, "rps", "gcr0", "--cpus", "1", "--no-persist")
        assert out.returncode == 0, out.stderr
        assert masks(a) == {"rx-0": {1}, "rx-1": {1}} and not (tmp_path / RULE).exists()
        assert tune(a, tmp_path, "verify").returncode == 0
        a.run(["ethtool", "-L", "gcr0", "rx", "1"])  # one receive queue now: rx-1 is gone
        assert set(masks(a)) == {"rx-0"}
        back = tune(a, tmp_path, "rollback")
        assert back.returncode == 0, back.stderr
        assert masks(a) == {"rx-0": set()}
