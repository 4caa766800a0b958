"""The tuner on a real kernel: sysctl writes inside network namespaces we make, files in a temporary root.

`guestcheck tune --root TMP` keeps /proc/sys the namespace's own while /etc and /var/lib go to TMP, so
nothing here touches the machine's own values or files (the host's values are checked to be unchanged).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns import Netns, guestcheck_in, netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns]
REPO = Path(__file__).resolve().parents[2]
PATTERN = r"^net\.(ipv4\.(tcp_|ip_local)|core\.)"  # everything the profiles touch, and their neighbours

# per-namespace keys only: what a killed apply leaves half-done
MANY_KEYS = [("net.ipv4.tcp_fin_timeout", "17"), ("net.ipv4.tcp_tw_reuse", "1"), ("net.ipv4.tcp_mtu_probing", "1"),
             ("net.ipv4.tcp_slow_start_after_idle", "0"), ("net.core.somaxconn", "8191"),
             ("net.ipv4.tcp_keepalive_time", "600"), ("net.ipv4.tcp_syn_retries", "4"),
             ("net.ipv4.tcp_max_syn_backlog", "4096"), ("net.ipv4.ip_local_port_range", "20000 61000"),
             ("net.ipv4.tcp_notsent_lowat", "131072")]


def sysctls(ns: Netns) -> dict[str, str]:
    out = ns.run(["sysctl", "-a", "--pattern", PATTERN])
    values = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" = ")
        values[key] = " ".join(value.split())
    assert "net.ipv4.tcp_rmem" in values
    return values


def host_value(key: str) -> str:
    return " ".join(Path("/proc/sys", *key.split(".")).read_text().split())


def tune(ns: Netns, root: Path, *args: str, env: dict | None = None):
    if env:
        os.environ.update(env)
    try:
        out = guestcheck_in(ns, "tune", "--root", str(root), *args)
    finally:
        for k in env or {}:
            os.environ.pop(k, None)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def write_profile(tmp_path: Path, name: str, keys: list[tuple[str, str]]) -> Path:
    d = tmp_path / "profiles"
    d.mkdir(exist_ok=True)
    body = "".join(f"# reason: test key {i}\n{k} = {v}\n" for i, (k, v) in enumerate(keys))
    (d / f"{name}.conf").write_text(f"[main]\nsummary = live test\n[sysctl]\n{body}")
    return d


def test_apply_sets_live_values_and_the_file_rollback_restores_exactly(tmp_path):
    host_before = {k: host_value(k) for k in ("net.ipv4.tcp_fin_timeout", "net.core.somaxconn")}
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/sysctl.conf").write_text("net.ipv4.tcp_fin_timeout = 30\n")  # wins at boot over ours
    with netns() as ns:
        before = sysctls(ns)
        out = tune(ns, tmp_path, "apply", "many-connections")
        assert out.returncode == 1, out.stderr  # in force now, but sysctl.conf wins at the next boot
        print(out.stdout)
        assert out.stdout.splitlines()[-1] == (f"in force now, but at the next boot {tmp_path}/etc/sysctl.conf wins: "
                                               "it sets net.ipv4.tcp_fin_timeout = 30")
        now = sysctls(ns)
        assert now["net.ipv4.tcp_fin_timeout"] == "15" and now["net.ipv4.tcp_tw_reuse"] == "1"
        assert now["net.core.somaxconn"] == str(max(8192, int(before["net.core.somaxconn"])))
        assert now["net.ipv4.ip_local_port_range"] == "10240 65535"
        assert "left to the host: net.core.netdev_max_backlog" in out.stdout
        assert f"at boot {tmp_path}/etc/sysctl.conf:1 wins with 30" in out.stdout
        persist = (tmp_path / "etc/sysctl.d/90-guestcheck.conf").read_text()
        assert "net.ipv4.tcp_fin_timeout = 15\n" in persist and "netdev_max_backlog" not in persist
        journal = json.loads((tmp_path / "var/lib/guestcheck/tune-state.json").read_text())
        assert journal["sysctl"]["net.ipv4.tcp_fin_timeout"]["original"] == before["net.ipv4.tcp_fin_timeout"]
        assert {k: host_value(k) for k in host_before} == host_before  # the machine itself is untouched
        verify = tune(ns, tmp_path, "verify")
        assert verify.returncode == 1 and "is LOST after a reboot" in verify.stdout  # sysctl.conf wins at boot
        out = tune(ns, tmp_path, "rollback")
        assert out.returncode == 0, out.stderr
        assert sysctls(ns) == before
        assert not (tmp_path / "etc/sysctl.d/90-guestcheck.conf").exists()
        assert not (tmp_path / "var/lib/guestcheck/tune-state.json").exists()


def test_raise_only_and_host_keys_on_a_real_kernel(tmp_path):
    with netns() as ns:
        before = sysctls(ns)
        out = tune(ns, tmp_path, "apply", "throughput", "--force")
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        now = sysctls(ns)
        wants = {"net.ipv4.tcp_rmem": [4096, 87380, 16777216], "net.ipv4.tcp_wmem": [4096, 65536, 16777216]}
        for key, want in wants.items():
            old = [int(v) for v in before[key].split()]
            assert now[key] == " ".join(str(max(o, w)) for o, w in zip(old, want))  # never lowered
        assert "left to the host: net.core.rmem_max, net.core.wmem_max" in out.stdout
        assert now["net.core.rmem_max"] == before["net.core.rmem_max"]
        again = tune(ns, tmp_path, "apply", "throughput", "--force")
        assert "throughput: nothing to change" in again.stdout
        assert tune(ns, tmp_path, "verify", "throughput").returncode == 0
        tune(ns, tmp_path, "rollback")
        assert sysctls(ns) == before


def test_a_then_b_then_rollback_returns_to_the_original(tmp_path):
    with netns() as ns:
        before = sysctls(ns)
        assert tune(ns, tmp_path, "apply", "throughput", "--force").returncode == 0
        assert tune(ns, tmp_path, "apply", "latency").returncode == 0
        mid = sysctls(ns)
        assert mid["net.ipv4.tcp_wmem"] == before["net.ipv4.tcp_wmem"]  # throughput's key went back
        assert mid["net.ipv4.tcp_mtu_probing"] == "1"
        assert tune(ns, tmp_path, "rollback").returncode == 0
        assert sysctls(ns) == before


@pytest.mark.parametrize("kill_after", [1, 4, 9])
def test_sigkill_in_the_middle_of_apply_is_rolled_back(tmp_path, kill_after):
    profiles = write_profile(tmp_path, "many", MANY_KEYS)
    root = tmp_path / "root"
    with netns() as ns:
        before = sysctls(ns)
        env = {**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_TEST_PAUSE_AFTER_WRITE": str(kill_after)}
        argv = [sys.executable, "-m", "guestcheck", "tune", "--root", str(root), "--profiles", str(profiles),
                "apply", "many"]
        proc = ns.popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        written = []
        try:
            while len(written) < kill_after:
                line = proc.stderr.readline()
                assert line, "apply ended before it was killed"
                if line.startswith("guestcheck-test: wrote "):
                    written.append(line.split()[-1])
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        half = sysctls(ns)
        assert [k for k, _ in MANY_KEYS if half[k] != before[k]] == written  # really killed halfway
        journal = json.loads((root / "var/lib/guestcheck/tune-state.json").read_text())
        assert journal["complete"] is False
        assert not (root / "etc/sysctl.d/90-guestcheck.conf").exists()
        out = tune(ns, root, "rollback")
        assert out.returncode == 0, out.stderr
        assert sysctls(ns) == before
        assert not (root / "var/lib/guestcheck/tune-state.json").exists()


def test_a_value_the_kernel_refuses_midway_undoes_the_earlier_writes(tmp_path):
    keys = [("net.ipv4.tcp_fin_timeout", "21"), ("net.ipv4.tcp_tw_reuse", "1"), ("net.ipv4.tcp_mtu_probing", "banana"),
            ("net.ipv4.tcp_syn_retries", "3")]
    profiles = write_profile(tmp_path, "bad", keys)
    with netns() as ns:
        before = sysctls(ns)
        out = tune(ns, tmp_path, "--profiles", str(profiles), "apply", "bad")
        assert out.returncode == 3
        assert out.stderr.strip().splitlines() == [
            "Error: the kernel refused net.ipv4.tcp_mtu_probing = banana (Invalid argument); "
            "undid 2 change(s) before it: the system is as it was"]
        assert sysctls(ns) == before
        assert not (tmp_path / "etc").exists() and not (tmp_path / "var/lib/guestcheck/tune-state.json").exists()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_read_only_proc_sys_is_refused_before_anything_changes(tmp_path):
    """A container's view: /proc/sys bind-mounted read-only in a private mount namespace."""
    script = ("import os, subprocess, sys\n"
              "subprocess.run(['mount', '--bind', '/proc/sys', '/proc/sys'], check=True)\n"
              "subprocess.run(['mount', '-o', 'remount,bind,ro', '/proc/sys'], check=True)\n"
              "from guestcheck.entry import main\n"
              "main(sys.argv[1:])\n")
    with netns() as ns:
        before = sysctls(ns)
        out = ns.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script,
                      "tune", "--root", str(tmp_path), "apply", "many-connections"],
                     check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert out.returncode == 3, out.stderr
        assert out.stderr.strip() == ("Error: /proc/sys is mounted read-only (a container?): nothing was changed")
        assert sysctls(ns) == before
        assert not (tmp_path / "var/lib/guestcheck/tune-state.json").exists()


def features(ns: Netns, dev: str) -> dict[str, str]:
    out = ns.run(["ethtool", "-k", dev])
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.stdout.splitlines()[1:])}


@pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")
def test_offloads_switched_off_on_a_veth_come_back_on_and_rollback_restores(tmp_path):
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "tso", "off", "gso", "off", "tx", "off"])
        off = features(a, "gc0")
        assert off["tcp-segmentation-offload"] == "off" and off["tx-checksumming"] == "off"
        dry = tune(a, tmp_path, "offloads", "gc0", "--dry-run")
        assert "would set TSO: off -> on" in dry.stdout and features(a, "gc0") == off
        out = tune(a, tmp_path, "offloads", "gc0")
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        on = features(a, "gc0")
        for name in ("tcp-segmentation-offload", "generic-segmentation-offload", "tx-checksumming",
                     "tx-tcp-segmentation", "tx-checksum-ip-generic"):
            assert on[name] == "on", name
        assert on["generic-receive-offload"] == off["generic-receive-offload"]  # veth GRO: doctor does not flag it
        assert "nothing to change" in tune(a, tmp_path, "offloads", "gc0").stdout
        assert tune(a, tmp_path, "rollback").returncode == 0
        assert features(a, "gc0") == off


@pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="veth queues max out at the CPU count: needs 2 CPUs")
def test_queues_on_a_veth_go_to_min_vcpus_max_and_back(tmp_path):
    with netns() as a, netns() as b, veth_pair(a, b):
        before = a.run(["ethtool", "-l", "gc0"]).stdout
        out = tune(a, tmp_path, "queues", "gc0")
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        cur = a.run(["ethtool", "-l", "gc0"]).stdout.split("Current hardware settings:")[1]
        vcpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        maximum = int(before.split("Pre-set maximums:")[1].split("RX:")[1].split()[0])
        assert int(cur.split("RX:")[1].split()[0]) == min(vcpus, maximum)
        assert tune(a, tmp_path, "rollback").returncode == 0
        assert a.run(["ethtool", "-l", "gc0"]).stdout == before


DEFAULT_LINK = ("[Match]\nOriginalName=*\n\n[Link]\nNamePolicy=keep kernel database onboard slot path\n"
                "AlternativeNamesPolicy=database onboard slot path\nMACAddressPolicy=persistent\n")


def _link_root(tmp_path: Path) -> Path:
    lib = tmp_path / "usr/lib/systemd/network"
    lib.mkdir(parents=True)
    (lib / "99-default.link").write_text(DEFAULT_LINK)
    return tmp_path


@pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")
def test_offloads_persisted_as_a_link_file_in_a_temporary_root(tmp_path):
    """Rings need a driver that has them (veth has none): they are persisted in tests/vm/test_nic_persist_vm.py."""
    root = _link_root(tmp_path)
    with netns() as a, netns() as b, veth_pair(a, b):
        mac = a.run(["cat", "/sys/class/net/gc0/address"]).stdout.strip()
        a.run(["ethtool", "-K", "gc0", "sg", "off", "tso", "off", "gso", "off"])
        off = features(a, "gc0")
        out = tune(a, root, "offloads", "gc0")
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        link = root / "etc/systemd/network/50-guestcheck-gc0.link"
        text = link.read_text()
        # a veth moved into a namespace was renamed and has no permanent address: its address is the match
        assert f"[Match]\nMACAddress={mac}\n" in text
        assert "NamePolicy=keep kernel database onboard slot path\n" in text  # carried over from 99-default
        assert "TCPSegmentationOffload=yes" in text and "GenericSegmentationOffload=yes" in text
        rule = root / "etc/udev/rules.d/90-guestcheck-gc0.rules"
        assert "ethtool -K $name tx-scatter-gather on" in rule.read_text()
        assert features(a, "gc0")["scatter-gather"] == "on"
        assert tune(a, root, "verify").returncode == 0
        a.run(["ethtool", "-K", "gc0", "gso", "off"])  # drift, live
        drift = tune(a, root, "verify")
        assert drift.returncode == 1 and "DIFF gc0 tx-generic-segmentation: live off, expected on" in drift.stdout
        a.run(["ethtool", "-K", "gc0", "gso", "on"])
        link.write_text(text.replace("TCPSegmentationOffload=yes", "TCPSegmentationOffload=no"))  # drift, at boot
        drift = tune(a, root, "verify")
        assert drift.returncode == 1 and "DIFF gc0 next boot TCPSegmentationOffload: live no, expected yes" in \
            drift.stdout
        link.write_text(text)
        later = root / "run/systemd/network/20-later.link"  # a .link file that appeared since and wins at boot
        later.parent.mkdir(parents=True)
        later.write_text(f"[Match]\nMACAddress={mac}\n[Link]\nMTUBytes=1400\n")
        drift = tune(a, root, "verify")
        assert drift.returncode == 1 and f"problem: {later} matches this interface and sorts before " \
            "50-guestcheck-gc0.link: it wins at boot" in drift.stdout
        later.unlink()
        assert tune(a, root, "rollback").returncode == 0
        assert features(a, "gc0") == off and not link.exists() and not rule.exists()
        assert (root / "usr/lib/systemd/network/99-default.link").read_text() == DEFAULT_LINK
        live = tune(a, root, "offloads", "gc0", "--no-persist")
        assert "live only (--no-persist)" in live.stdout and not link.exists()
        assert tune(a, root, "rollback").returncode == 0


@pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="veth queues max out at the CPU count: needs 2 CPUs")
def test_a_link_file_that_wins_is_reported_and_the_setting_goes_to_a_udev_rule(tmp_path):
    root = _link_root(tmp_path)
    with netns() as a, netns() as b, veth_pair(a, b):
        mac = a.run(["cat", "/sys/class/net/gc0/address"]).stdout.strip()
        admin = root / "etc/systemd/network/10-admin.link"
        admin.parent.mkdir(parents=True)
        admin.write_text(f"[Match]\nMACAddress={mac}\n\n[Link]\nName=lan0\n")
        before = a.run(["ethtool", "-l", "gc0"]).stdout
        out = tune(a, root, "queues", "gc0")
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        assert f"note: {admin} matches this interface and sorts before 50-guestcheck-gc0.link: it wins at boot" \
            in out.stdout
        assert not (root / "etc/systemd/network/50-guestcheck-gc0.link").exists()
        rule = (root / "etc/udev/rules.d/90-guestcheck-gc0.rules").read_text()
        assert "another .link file matches this interface" in rule and "ethtool -L $name rx 2 tx 2" in rule
        assert tune(a, root, "verify").returncode == 0
        assert tune(a, root, "rollback").returncode == 0
        assert a.run(["ethtool", "-l", "gc0"]).stdout == before and admin.exists()
