"""Planning against live values: raise-only, skips, namespaces, algorithm availability, a second profile."""

from __future__ import annotations

from guestcheck.tune.journal import State, SysctlBackup
from guestcheck.tune.plan import HOST, KEEP, RESTORE, SET, SKIP, plan_profile, raise_only
from guestcheck.tune.profile import load, parse_text
from tests.tune_fake import PROFILES, FakeKernel

DIRS = [str(PROFILES)]


def _by_key(plan):
    return {c.key: c for c in plan.changes}


def test_raise_only_element_wise():
    assert raise_only("4096 131072 6291456", "4096 87380 16777216") == "4096 131072 16777216"
    assert raise_only("4096 131072 33554432", "4096 87380 16777216") == "4096 131072 33554432"
    assert raise_only("212992", "16777216") == "16777216"
    assert raise_only("1 2", "1 2 3") == "1 2 3"  # shapes differ: the profile's value


def test_throughput_on_a_stock_kernel(tmp_path):
    k = FakeKernel(tmp_path)
    c = _by_key(plan_profile(load("throughput", DIRS), k.roots, None, k.procsys))
    assert (c["net.core.rmem_max"].action, c["net.core.rmem_max"].target) == (SET, "16777216")
    assert c["net.ipv4.tcp_rmem"].target == "4096 131072 16777216"  # middle field kept: 131072 > 87380
    assert c["net.ipv4.tcp_wmem"].target == "4096 65536 16777216"
    assert c["net.ipv4.tcp_window_scaling"].action == KEEP


def test_a_kernel_that_ships_32_mib_is_not_lowered(tmp_path):
    k = FakeKernel(tmp_path)
    k.set("net.ipv4.tcp_rmem", "4096 131072 33554432")
    k.set("net.core.rmem_max", "33554432")
    c = _by_key(plan_profile(load("throughput", DIRS), k.roots, None, k.procsys))
    assert c["net.ipv4.tcp_rmem"].action == KEEP and "raise-only" in c["net.ipv4.tcp_rmem"].note
    assert c["net.core.rmem_max"].action == KEEP


def test_missing_and_read_only_keys_in_the_initial_namespace(tmp_path):
    k = FakeKernel(tmp_path, read_only=("net.ipv4.tcp_wmem",))
    (tmp_path / "proc/sys/net/ipv4/tcp_notsent_lowat").unlink()
    c = _by_key(plan_profile(load("latency", DIRS), k.roots, None, k.procsys))
    assert (c["net.ipv4.tcp_notsent_lowat"].action, c["net.ipv4.tcp_notsent_lowat"].note) == (
        SKIP, "this kernel has no such key")
    c = _by_key(plan_profile(load("throughput", DIRS), k.roots, None, k.procsys))
    assert (c["net.ipv4.tcp_wmem"].action, c["net.ipv4.tcp_wmem"].note) == (SKIP, "read-only on this kernel")


def test_in_a_child_namespace_global_keys_are_left_to_the_host(tmp_path):
    k = FakeKernel(tmp_path, netns=True)
    profile = parse_text("[sysctl]\nnet.core.rmem_max = >16777216\nnet.core.netdev_max_backlog = 5000\n"
                         "vm.swappiness = 10\nnet.ipv4.tcp_fin_timeout = 15\n", "p", "p.conf")
    plan = plan_profile(profile, k.roots, None, k.procsys)
    assert plan.initial_netns is False
    c = _by_key(plan)
    assert c["net.core.rmem_max"].action == HOST and "read-only in this network namespace" in c[
        "net.core.rmem_max"].note
    assert c["net.core.netdev_max_backlog"].action == HOST
    # vm.* is writable from any namespace but host-wide: never written from inside one
    assert c["vm.swappiness"].action == HOST and "would change the host" in c["vm.swappiness"].note
    assert [w.key for w in plan.writes()] == ["net.ipv4.tcp_fin_timeout"]


def test_fq_and_bbr_only_where_the_kernel_has_them(tmp_path):
    k = FakeKernel(tmp_path)
    c = _by_key(plan_profile(load("latency", DIRS), k.roots, None, k.procsys))
    assert c["net.ipv4.tcp_congestion_control"].action == SKIP
    assert "no bbr congestion control (available: reno cubic)" in c["net.ipv4.tcp_congestion_control"].note
    assert c["net.core.default_qdisc"].action == SKIP and "no fq qdisc" in c["net.core.default_qdisc"].note
    k.set("kernel.osrelease", "6.1.0-test")
    moddir = tmp_path / "lib/modules/6.1.0-test"
    (moddir / "kernel/net/ipv4").mkdir(parents=True)
    (moddir / "kernel/net/ipv4/tcp_bbr.ko.xz").write_bytes(b"")
    (moddir / "modules.builtin").write_text("kernel/net/sched/sch_fq.ko\n")
    c = _by_key(plan_profile(load("latency", DIRS), k.roots, None, k.procsys))
    assert c["net.ipv4.tcp_congestion_control"].action == SET
    assert c["net.core.default_qdisc"].action == SET


def test_second_profile_plans_against_the_originals(tmp_path):
    """B over A = rollback A, then B: A's keys go back, raise-only compares with the kernel's own value."""
    k = FakeKernel(tmp_path)
    k.set("net.ipv4.tcp_rmem", "4096 131072 33554432")  # as profile A left it
    k.set("net.ipv4.tcp_fin_timeout", "15")
    state = State(profile="a", sysctl={
        "net.ipv4.tcp_rmem": SysctlBackup("4096 131072 6291456", "4096 131072 33554432"),
        "net.ipv4.tcp_fin_timeout": SysctlBackup("60", "15")})
    b = parse_text("[sysctl]\nnet.ipv4.tcp_rmem = >4096 87380 16777216\n", "b", "b.conf")
    plan = plan_profile(b, k.roots, state, k.procsys)
    c = _by_key(plan)
    assert (c["net.ipv4.tcp_rmem"].action, c["net.ipv4.tcp_rmem"].target) == (SET, "4096 131072 16777216")
    assert (c["net.ipv4.tcp_fin_timeout"].action, c["net.ipv4.tcp_fin_timeout"].target) == (RESTORE, "60")
    assert plan.backups() == {"net.ipv4.tcp_rmem": "4096 131072 6291456"}
