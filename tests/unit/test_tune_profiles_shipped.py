"""The profiles we ship: each parses, has a summary, and gives a reason for every key."""

from __future__ import annotations

import pytest

from guestcheck.tune.profile import available, load
from tests.tune_fake import PROFILES

DIRS = [str(PROFILES)]


def test_the_four_profiles_are_shipped():
    assert {"throughput", "many-connections", "latency", "wan", "wan-lossy"} <= set(available(DIRS))


@pytest.mark.parametrize("name", sorted(available(DIRS)))
def test_every_key_has_a_reason_and_the_profile_a_summary(name):
    p = load(name, DIRS)
    assert p.summary
    assert p.settings
    for s in p.settings.values():
        assert s.reason, f"{s.where}: {s.key} has no '# reason:' line"
        assert "\n" not in s.reason


def test_throughput_has_the_issue_values_all_raise_only_and_a_memory_guard():
    p = load("throughput", DIRS)
    want = {"net.core.rmem_max": "16777216", "net.core.wmem_max": "16777216",
            "net.ipv4.tcp_rmem": "4096 131072 16777216", "net.ipv4.tcp_wmem": "4096 65536 16777216",
            "net.core.netdev_max_backlog": "16384"}
    for key, value in want.items():
        assert (p.settings[key].value, p.settings[key].raise_only) == (value, True)
    assert p.guards.requires_guaranteed_memory and p.guards.min_ram_mb


def test_many_connections_latency_and_wan_carry_their_keys():
    mc = load("many-connections", DIRS).settings
    assert mc["net.ipv4.tcp_tw_reuse"].value == "1" and mc["net.ipv4.tcp_fin_timeout"].value == "15"
    assert {"net.core.somaxconn", "net.core.netdev_max_backlog", "net.ipv4.ip_local_port_range"} <= set(mc)
    for name in ("latency", "wan", "wan-lossy"):
        s = load(name, DIRS).settings
        assert s["net.core.default_qdisc"].value == "fq"
        assert s["net.ipv4.tcp_mtu_probing"].value == "1"
    for name in ("latency", "wan-lossy"):
        assert load(name, DIRS).settings["net.ipv4.tcp_congestion_control"].value == "bbr"
    wan = load("wan", DIRS)
    # the kernel's CUBIC stays: BBR v1 moved 6 % less than CUBIC on a clean 300 ms path (bench/tune_bdp.py)
    assert "net.ipv4.tcp_congestion_control" not in wan.settings
    assert wan.includes == ["throughput"] and wan.settings["net.ipv4.tcp_rmem"].raise_only
    assert wan.guards.requires_guaranteed_memory  # inherited from throughput
    lossy = load("wan-lossy", DIRS)
    assert lossy.includes == ["wan"] and lossy.guards.requires_guaranteed_memory
    assert lossy.settings["net.ipv4.tcp_rmem"] == wan.settings["net.ipv4.tcp_rmem"]
