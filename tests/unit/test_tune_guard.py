"""The memory guard and `recommend`, against doctor's verdict contract (faked here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Optional

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
