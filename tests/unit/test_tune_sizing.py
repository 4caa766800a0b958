"""Buffer ceilings sized to the path (guestcheck/tune/sizing.py): the overhead rule, the bounds, raise-only."""

from __future__ import annotations

from fractions import Fraction

import pytest

from guestcheck.tune.profile import parse_text
from guestcheck.tune.sizing import (
    INT_MAX,
    KERNEL,
    MEMORY,
    PATH,
    MemoryCap,
    NetPath,
    overhead,
    size,
    sized_profile,
)

GIB = 2**30
PATH_400_300 = NetPath(400e6, 0.300, "--rtt 300ms")


@pytest.mark.parametrize("scale,release,factor", [
    ("1", "6.1.0-18-amd64", Fraction(2)),  # Debian 12: window = half the buffer
    ("2", "6.1.0", Fraction(4, 3)),  # three quarters of the buffer is window
    ("-1", "5.10.0", Fraction(2)),
    ("-2", "5.10.0", Fraction(4)),
    ("1", "6.6.0", Fraction(2)),  # per-socket ratio from 6.6: the sysctl no longer counts
    ("3", "6.18.44-fc", Fraction(2)),
    (None, "5.4.0", Fraction(2)),  # no such key
    ("banana", "5.4.0", Fraction(2)),
    ("99", "5.4.0", Fraction(2)),  # out of the kernel's range
    ("2", None, Fraction(4, 3)),  # release unknown: believe the sysctl
])
def test_the_overhead_factor_follows_tcp_adv_win_scale_on_kernels_that_use_it(scale, release, factor):
    got = overhead(scale, release)
    assert got.factor == factor and got.why


def test_bdp_times_two_bound_by_the_path():
    s = size(PATH_400_300, overhead("1", "6.1.0"), MemoryCap(8 * GIB, Fraction(1, 16), True))
    assert PATH_400_300.bdp_bytes == 15_000_000
    assert s.needed_bytes == 30_003_200 and s.needed_bytes % 4096 == 0  # 2 x BDP, up to a page
    assert (s.ceiling_bytes, s.bound) == (30_003_200, PATH)
    text = "\n".join(s.lines())
    assert "BDP: 15000000 bytes" in text and "x 2 (tcp_adv_win_scale 1)" in text
    assert "memory cap: 1/16 of 8192.0 MiB guaranteed RAM = 536870912 bytes" in text
    assert "bound by the path" in text and "sized to 400 Mbit/s x 300 ms" in s.summary()


def test_a_small_machine_is_bound_by_memory():
    s = size(PATH_400_300, overhead("1", "6.1.0"), MemoryCap(256 * 2**20, Fraction(1, 16), True))
    assert (s.ceiling_bytes, s.bound) == (16 * 2**20, MEMORY)
    assert "bound by the memory (the path needs 30003200)" in s.lines()[-1]


def test_a_huge_path_is_bound_by_the_kernel_int():
    s = size(NetPath(100e9, 2.0, "x"), overhead("1", "6.1.0"), MemoryCap(2**45, Fraction(1, 2), True))
    assert s.bound == KERNEL and s.ceiling_bytes <= INT_MAX and s.ceiling_bytes % 4096 == 0


def test_sized_profile_moves_only_the_ceilings_and_adds_missing_keys_from_the_baseline():
    p = parse_text("[sysctl]\n# reason: r\n# source: TuneD\nnet.ipv4.tcp_rmem = >4096 131072 16777216\n"
                   "net.ipv4.tcp_mtu_probing = 1\n", "p", "p.conf")
    baseline = {"net.ipv4.tcp_wmem": "4096 16384 4194304", "net.core.rmem_max": "212992"}
    out = sized_profile(p, 30_003_200, "sized", baseline.get)
    rmem, wmem = out.settings["net.ipv4.tcp_rmem"], out.settings["net.ipv4.tcp_wmem"]
    assert (rmem.value, rmem.raise_only, rmem.reason, rmem.source) == ("4096 131072 30003200", True, "sized", "TuneD")
    assert (wmem.value, wmem.raise_only) == ("4096 16384 30003200", True)  # min and default stay the kernel's
    assert out.settings["net.core.rmem_max"].value == "30003200"
    assert out.settings["net.core.wmem_max"].value == "30003200"  # single field: no baseline needed
    assert out.settings["net.ipv4.tcp_mtu_probing"] == p.settings["net.ipv4.tcp_mtu_probing"]
    assert p.settings["net.ipv4.tcp_rmem"].value == "4096 131072 16777216"  # the loaded profile is untouched
    no_kernel_key = sized_profile(p, 4096, "s", lambda key: None)
    assert "net.ipv4.tcp_wmem" not in no_kernel_key.settings  # absent here: nothing to size


def test_a_ceiling_below_the_default_keeps_the_default_as_the_ceiling():
    """1 Gbit/s x 30 us is 8 KiB: tcp_rmem "4096 131072 8192" would put the max under the default, which the
    kernel refuses; the ceiling stays at the default, and single-field keys take the path's size."""
    p = parse_text("[sysctl]\nnet.ipv4.tcp_rmem = >4096 131072 16777216\n", "p", "p.conf")
    out = sized_profile(p, 8192, "sized", {"net.ipv4.tcp_wmem": "4096 16384 4194304"}.get)
    assert out.settings["net.ipv4.tcp_rmem"].value == "4096 131072 131072"
    assert out.settings["net.ipv4.tcp_wmem"].value == "4096 16384 16384"
    assert out.settings["net.core.rmem_max"].value == "8192"
