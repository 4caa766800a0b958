"""verify's words for what the journal holds (guestcheck/tune/verify.py): the subject and an interrupted run."""

from __future__ import annotations

from guestcheck.tune.journal import State, SysctlBackup
from guestcheck.tune.verify import interrupted_run, never_written, subject_of
from tests.tune_fake import FakeKernel


def test_the_subject_names_what_was_really_applied():
    assert subject_of(State(profile="wan")) == "wan"
    assert subject_of(State(profile="wan", complete=False, applying="latency")) == "latency (interrupted)"
    assert subject_of(State(features={"eth0": {"rx-gro": True}}), ["offloads"]) == "offloads"
    assert subject_of(State(channels={"eth0": {"combined": 2}}), ["queues", "rings"]) == "queues/rings"
    assert subject_of(State(complete=False, sysctl={"net.a": SysctlBackup("1", "2")})) == "sysctl settings"
    assert subject_of(State(profile="\x1b[2J")) == "\\x1b[2J"


def test_never_written_keys_are_those_still_at_their_original(tmp_path):
    k = FakeKernel(tmp_path)
    state = State(complete=False, applying="p", sysctl={
        "net.ipv4.tcp_fin_timeout": SysctlBackup("60", "15"),  # still 60: never written
        "net.ipv4.tcp_tw_reuse": SysctlBackup("0", "2"),  # live 2: written
        "net.ipv4.tcp_sack": SysctlBackup("1", "1")})  # nothing to write
    assert never_written(state, k.procsys) == ["net.ipv4.tcp_fin_timeout"]
    assert interrupted_run(state, k.procsys)[1] == "never written (still at their original values): " \
                                                   "net.ipv4.tcp_fin_timeout"
    state.complete = True
    assert never_written(state, k.procsys) == [] and interrupted_run(state, k.procsys) == []
