"""The memory guard and `recommend`, against doctor's verdict contract (faked here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from types import SimpleNamespace
from typing import Optional

import pytest

from guestcheck.judge.memory import memory_verdict
from guestcheck.tune.guard import check
from guestcheck.tune.profile import Guards
from guestcheck.tune.recommend import recommend
from tests.tune_fake import PROFILES

GIB = 1024**3
STRICT = Guards(min_ram_mb=1024, requires_guaranteed_memory=True)


@dataclass
class FakeVerdict:
    guaranteed: Optional[bool]
    reasons: list = field(default_factory=list)
    total_bytes: Optional[int] = None


def facts(total: Optional[int]):
    return SimpleNamespace(memory=SimpleNamespace(total_bytes=total))


def test_guaranteed_and_enough_ram_is_allowed():
    r = check(STRICT, facts(4 * GIB), lambda f: FakeVerdict(True))
    assert r.allowed and r.reasons == ["memory is guaranteed", "RAM 4096 MiB >= 1024 MiB"]


def test_not_guaranteed_is_refused_with_the_reason():
    r = check(STRICT, facts(4 * GIB), lambda f: FakeVerdict(False, ["virtio-balloon bound (2 GiB inflated now)"]))
    assert not r.allowed
    assert r.reasons == ["memory is not guaranteed (virtio-balloon bound (2 GiB inflated now))"]


def test_unknown_guarantee_is_refused():
    r = check(STRICT, facts(4 * GIB), lambda f: FakeVerdict(None, ["VMware balloon loaded"]))
    assert not r.allowed and "could not be confirmed (VMware balloon loaded)" in r.reasons[0]


def test_too_little_ram_is_refused_and_the_verdicts_usable_ram_wins():
    r = check(STRICT, facts(4 * GIB), lambda f: FakeVerdict(True, total_bytes=512 * 1024**2))  # a cgroup cap
    assert not r.allowed and r.reasons == ["RAM is 512 MiB, below the profile's minimum of 1024 MiB"]
    r = check(Guards(min_ram_mb=1024), facts(None), lambda f: None)
    assert not r.allowed and r.reasons == ["RAM unknown, the profile needs at least 1024 MiB"]


def test_a_ceiling_sized_to_the_path_holds_min_ram_to_its_share_of_the_ram():
    """A "1 GiB" guest shows MemTotal 958 MiB: a path-sized ceiling within 1/16 of it is allowed (issue 23: the
    FLOW-* fix must not be refused on a normal guest); the profile's fixed 16 MiB and an oversized ceiling are not."""
    small = facts(958 * 1024**2)
    guaranteed = lambda f: FakeVerdict(True)  # noqa: E731
    r = check(STRICT, small, guaranteed, ceiling=5_000_000, sized=True)
    assert r.allowed and r.sized_below_min_ram and not r.bounded
    assert "below the profile's 1024 MiB, but the ceiling is sized to the path: 5000000 bytes per socket, within " \
           "1/16 of it" in r.reasons[-1]
    assert not check(STRICT, small, guaranteed, ceiling=5_000_000).allowed  # not sized: the profile's rule
    over = 958 * 1024**2 // 16 + 1
    assert check(STRICT, small, guaranteed, ceiling=over, sized=True).reasons == [
        "RAM is 958 MiB, below the profile's minimum of 1024 MiB"]
    quarter = Guards(min_ram_mb=1024, requires_guaranteed_memory=True, max_buffer_share=Fraction(1, 512))
    assert not check(quarter, small, guaranteed, ceiling=5_000_000, sized=True).allowed  # the profile's share
    assert not check(STRICT, small, lambda f: FakeVerdict(False, ["cgroup limit"]), ceiling=5_000_000,
                     sized=True).allowed  # memory not guaranteed: refused as before


def test_no_memory_check_installed_means_unknown():
    def missing(f):
        raise ImportError("no guestcheck.checks.memory")

    r = check(STRICT, facts(4 * GIB), missing)
    assert not r.allowed and "memory guarantee unknown" in r.reasons[0]


def test_profiles_without_guards_never_ask():
    def boom(f):
        raise AssertionError("must not be called")

    assert check(Guards(), None, boom).allowed


def test_recommend_throughput_when_memory_is_guaranteed_and_large():
    r = recommend(facts(8 * GIB), [str(PROFILES)], lambda f: FakeVerdict(True))
    assert r.profile == "throughput" and "RAM 8192 MiB >= 1024 MiB" in r.reasons
    assert "16 MiB TCP buffers are safe" in r.conclusion


def test_recommend_latency_otherwise_and_says_why():
    r = recommend(facts(8 * GIB), [str(PROFILES)], lambda f: FakeVerdict(False, ["virtio-balloon bound"]))
    assert r.profile == "latency" and r.reasons == ["memory is not guaranteed (virtio-balloon bound)"]
    r = recommend(facts(512 * 1024**2), [str(PROFILES)], lambda f: FakeVerdict(True))
    assert r.profile == "latency" and "below the profile's minimum" in r.reasons[0]
    assert any(a.startswith("many-connections") for a in r.alternatives)


# -- issue 19 item 5: the guard is proportionate to what the balloon can do -----------------------------------

def balloon_facts(total: int, inflated, deflate_on_oom=None, container=None, **memory):
    from guestcheck.facts import Balloon, Facts, Memory, Virt

    balloon = Balloon("virtio-balloon", True, "virtio0", inflated_bytes=inflated, deflate_on_oom=deflate_on_oom)
    return Facts(virt=Virt(container=container), memory=Memory(total_bytes=total, balloons=[balloon], **memory))


THROUGHPUT = Guards(min_ram_mb=1024, requires_guaranteed_memory=True)
SIXTEEN_MIB = 16 * 1024**2


@pytest.mark.parametrize("inflated,oom", [(0, None), (0, True), (None, True), (0, False)])
def test_an_idle_or_deflate_on_oom_balloon_allows_ceilings_up_to_one_64th_of_memtotal(inflated, oom):
    f = balloon_facts(24 * GIB, inflated, oom)
    r = check(THROUGHPUT, f, memory_verdict, ceiling=SIXTEEN_MIB)
    assert r.allowed and r.bounded, r.reasons
    assert r.reasons[0].startswith("memory is not guaranteed, but virtio-balloon bound (")
    assert "per-socket ceilings up to 402653184 bytes (1/64 of MemTotal 24.0 GiB) are allowed" in r.reasons[0]
    assert check(THROUGHPUT, f, memory_verdict, ceiling=384 * 1024**2).allowed
    over = check(THROUGHPUT, f, memory_verdict, ceiling=384 * 1024**2 + 4096)
    assert not over.allowed and "above the 402653184 bytes (1/64 of MemTotal) an idle balloon allows" \
        in over.reasons[0]


@pytest.mark.parametrize("f,why", [
    (balloon_facts(24 * GIB, 2 * GIB, True), "inflated: 2 GiB taken, deflate-on-oom or not"),
    (balloon_facts(24 * GIB, None, None), "inflation unknown and no deflate-on-oom: not known idle"),
    (balloon_facts(24 * GIB, None, False), "inflation unknown, deflate-on-oom off"),
    (balloon_facts(2 * GIB - 4096, 0, True), "MemTotal under 2 GiB"),
    (balloon_facts(256 * 1024**2, 0, True), "a 256 MiB guest"),
    (balloon_facts(24 * GIB, 0, True, container="lxc"), "a container"),
    (balloon_facts(24 * GIB, 0, True, beancounters=[]), "OpenVZ"),
    (balloon_facts(24 * GIB, 0, True, cgroup_limit_bytes=8 * GIB), "a cgroup limit too"),
    (balloon_facts(24 * GIB, 0, True, balloon_bytes=GIB), "meminfo counts 1 GiB in balloons"),
])
def test_todays_refusal_stands_where_the_balloon_is_not_idle_or_the_machine_small(f, why):
    r = check(THROUGHPUT, f, memory_verdict, ceiling=SIXTEEN_MIB)
    assert not r.allowed and not r.bounded, why
    assert any(x.startswith(("memory is not guaranteed", "memory guarantee could not")) for x in r.reasons), why


def test_a_ceiling_not_above_the_value_in_force_is_never_refused():
    def boom(f):
        raise AssertionError("nothing grows: the verdict is not needed")

    r = check(THROUGHPUT, balloon_facts(256 * 1024**2, 2 * GIB), boom, ceiling=0)
    assert r.allowed and r.reasons == ["no buffer ceiling rises above the value in force: nothing to guard"]


def test_raised_ceiling_counts_only_buffer_ceilings_above_the_value_in_force():
    from guestcheck.tune.guard import raised_ceiling

    stock = [("net.ipv4.tcp_rmem", "4096 131072 6291456", "4096 131072 28672"),  # a 28 KB sized ceiling: kept
             ("net.core.rmem_max", "212992", "212992"),
             ("net.core.netdev_max_backlog", "1000", "16384")]  # not a socket buffer
    assert raised_ceiling(stock) == 0
    assert raised_ceiling([("net.ipv4.tcp_wmem", "4096 16384 4194304", ">4096 65536 16777216"),
                           ("net.core.wmem_max", "212992", "8388608")]) == 16777216
    assert raised_ceiling([("net.core.rmem_max", None, "16777216")]) == 16777216  # unknown counts as raised
    # a value in force that is not ASCII digits ('²'.isdigit() is true) is unknown: raised, never a traceback
    assert raised_ceiling([("net.core.rmem_max", "²", "16777216")]) == 16777216
    assert raised_ceiling([("net.core.rmem_max", "212992", "²")]) == 0  # nothing readable to raise to


def test_recommend_on_24_gib_with_an_idle_balloon_answers_wan_for_1g_x_50ms(tmp_path):
    from guestcheck.tune.sizing import NetPath
    from tests.tune_fake import FakeKernel

    k = FakeKernel(tmp_path)
    f = balloon_facts(24 * GIB, 0, True)
    r = recommend(f, [str(PROFILES)], memory_verdict, procsys=k.procsys)
    assert r.profile == "throughput" and r.refusals == [] and "fit in what an idle balloon allows" in r.conclusion
    r = recommend(f, [str(PROFILES)], memory_verdict, path=NetPath(1e9, 0.050, "--rtt 50ms"), procsys=k.procsys)
    assert r.profile == "wan" and r.command == "guestcheck tune apply wan --rate 1G --rtt 50ms"
    assert any("memory cap: 1/64 of 24576.0 MiB MemTotal, NOT guaranteed, allowed by virtio-balloon bound "
               "(0 B inflated now, deflate-on-oom on) = 402653184 bytes" in s
               for s in r.sizes), r.sizes
    assert "ceiling: 12500992 bytes (11.9 MiB), bound by the path" in r.sizes


def test_recommend_says_which_apply_would_be_refused_and_why(tmp_path):
    from guestcheck.tune.sizing import NetPath
    from tests.tune_fake import FakeKernel

    k = FakeKernel(tmp_path)
    f = balloon_facts(256 * 1024**2, 0, True)
    r = recommend(f, [str(PROFILES)], memory_verdict, procsys=k.procsys)
    assert r.profile == "latency"
    assert r.refusals[0].startswith("`guestcheck tune apply throughput` would be refused without --force: "
                                    "memory is not guaranteed (virtio-balloon bound")
    r = recommend(f, [str(PROFILES)], memory_verdict, path=NetPath(1e9, 0.050, "--rtt 50ms"), procsys=k.procsys)
    assert r.refusals[-1].startswith("`guestcheck tune apply wan --rate 1G --rtt 50ms` would be refused without "
                                     "--force: memory is not guaranteed")
