"""DropTrace on a fake tracefs: counting, the cap, every 'unavailable', and what it gives back (instance, mount,
signal handlers), never touching the top-level buffer or another instance."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

from guestcheck.facts import DropReasons
from guestcheck.trace.session import Aggregator, DropTrace, cleanup_leftovers
from guestcheck.trace.tracefs import instance_name
from tests.faketracefs import DATA, FakeOps, FakeTracefs, format_text

LINE = ("python3-1 [001] ..s1. 1.0: kfree_skb: skbaddr=0000000057a3f9fe rx_sk=0000000000000000 protocol={proto} "
        "location={loc}+0x4bc/0xd00 reason: {reason}")


def line(reason: str = "NO_SOCKET", proto: int = 2048, loc: str = "__udp4_lib_rcv") -> str:
    return LINE.format(reason=reason, proto=proto, loc=loc)


def top_level(fake: FakeTracefs) -> dict:
    return {name: (fake.top / name).read_text() for name in ("tracing_on", "set_event", "trace")} | \
        {"enable": (fake.top / "events/skb/kfree_skb/enable").read_text()}


def run(fake: FakeTracefs, ops: FakeOps, **kw) -> DropReasons:
    with DropTrace(fake.roots, ops=ops, handle_signals=False, **kw) as trace:
        pass
    return trace.result()


def test_counts_by_reason_protocol_and_location(tmp_path):
    fake = FakeTracefs(tmp_path)
    before = top_level(fake)
    lines = [line()] * 5 + [line("NETFILTER_DROP", 34525, "nft_do_chain")] * 2 + [line("NOT_SPECIFIED")] + \
        [line("BRAND_NEW"), "CPU:0 [LOST 7 EVENTS]", "garbage"]
    ops = FakeOps(fake, lines=lines)
    result = run(fake, ops)
    assert result.available and result.machine_wide and not result.capped
    assert (result.events_seen, result.events_counted, result.events_lost, result.lines_malformed) == (9, 9, 7, 1)
    assert [(r.reason, r.protocol, r.location, r.count, r.known, r.noise) for r in result.rows] == [
        ("NO_SOCKET", "ipv4", "__udp4_lib_rcv", 5, True, False),
        ("NETFILTER_DROP", "ipv6", "nft_do_chain", 2, True, False),
        ("BRAND_NEW", "ipv4", "__udp4_lib_rcv", 1, False, False),  # unknown: kept by its printed name
        ("NOT_SPECIFIED", "ipv4", "__udp4_lib_rcv", 1, True, True),  # kept, flagged as noise
    ]
    assert result.by_reason()["NO_SOCKET"] == 5 and result.reasons_known == 128 and result.location_symbolic
    name = instance_name()
    assert ("write", f"{fake.instance(name)}/events/skb/kfree_skb/enable=1") in ops.calls
    assert ops.calls[-1] == ("rmdir", str(fake.instance(name)))
    assert not fake.instance(name).exists() and top_level(fake) == before
    assert not any(op == "mount" for op, _ in ops.calls)  # tracefs was mounted: no mount of ours


def test_61_kernel_rows_have_no_location(tmp_path):
    fake = FakeTracefs(tmp_path, kernel="6.1")
    ops = FakeOps(fake, lines=["<idle>-0 [000] ..s. 81.0: kfree_skb: skbaddr=000000008ae5c5c9 protocol=2048 "
                               "location=000000003b0e14ab reason: IP_RPFILTER"])
    result = run(fake, ops)
    assert result.available and not result.location_symbolic and result.reasons_known == 64
    assert [(r.reason, r.location, r.count) for r in result.rows] == [("IP_RPFILTER", "?", 1)]


def test_the_cap_counts_what_it_skips():
    agg = Aggregator(frozenset({"NO_SOCKET"}), cap_per_second=3)
    agg.feed(("\n".join([line()] * 5) + "\n").encode(), now=10.2)
    agg.feed((line() + "\n").encode(), now=11.0)  # a new second: counted again
    assert (agg.seen, agg.counted, agg.not_counted, agg.capped) == (6, 4, 2, True)


def test_partial_lines_join_and_an_endless_line_is_dropped():
    agg = Aggregator(frozenset())
    text = (line() + "\n").encode()
    agg.feed(text[:30], now=1.0)
    agg.feed(text[30:], now=1.0)
    agg.feed(b"y" * 600, now=1.0)
    assert (agg.counted, agg.malformed) == (1, 1)


def test_kernel_without_reasons_is_unavailable(tmp_path):
    fake = FakeTracefs(tmp_path, kernel="5.10")
    ops = FakeOps(fake)
    result = run(fake, ops)
    assert not result.available and "5.17" in result.reason_unavailable
    assert not any(op == "mkdir" for op, _ in ops.calls)


def test_read_only_tracefs(tmp_path):
    fake = FakeTracefs(tmp_path, read_only=True)
    result = run(fake, FakeOps(fake))
    assert not result.available and result.reason_unavailable.endswith("tracefs is mounted read-only")


@pytest.mark.parametrize("code, says", [(errno.EPERM, "permission denied"), (errno.EACCES, "permission denied")])
def test_permission_refused(tmp_path, code, says):
    fake = FakeTracefs(tmp_path)
    result = run(fake, FakeOps(fake, mkdir_errno=code))
    assert not result.available and says in result.reason_unavailable and "\n" not in result.reason_unavailable


def test_instance_name_taken_is_left_alone(tmp_path):
    fake = FakeTracefs(tmp_path)
    taken = fake.instance(instance_name())
    taken.mkdir(parents=True)
    (taken / "mine").write_text("someone's\n")
    ops = FakeOps(fake)
    result = run(fake, ops)
    assert not result.available and result.reason_unavailable == \
        f"trace instance {instance_name()} exists already (not ours to use or remove)"
    assert (taken / "mine").exists() and not any(op in ("mkdir", "rmdir") for op, _ in ops.calls)


def test_mounts_only_where_unmounted_and_unmounts_what_it_mounted(tmp_path):
    fake = FakeTracefs(tmp_path, mounted=False)
    ops = FakeOps(fake, lines=[line()])
    result = run(fake, ops)
    assert result.available and result.events_counted == 1
    assert [op for op, _ in ops.calls if op in ("mount", "unmount")] == ["mount", "unmount"]
    assert not fake.mounted


def test_a_mount_stacked_over_ours_is_left(tmp_path):
    fake = FakeTracefs(tmp_path, mounted=False)
    ops = FakeOps(fake)
    with DropTrace(fake.roots, ops=ops, handle_signals=False) as trace:
        fake.write_mountinfo(True, mount_id=99)  # someone else mounted over it meanwhile
    result = trace.result()
    assert result.available and not any(op == "unmount" for op, _ in ops.calls)
    assert any("no longer the one we made" in note for note in trace.notes)


def test_mount_refused(tmp_path):
    fake = FakeTracefs(tmp_path, mounted=False)
    result = run(fake, FakeOps(fake, mount_errno=errno.EPERM))
    assert not result.available and result.reason_unavailable.startswith("mounting tracefs at /sys/kernel/tracing")


def test_no_tracefs_at_all(tmp_path):
    fake = FakeTracefs(tmp_path, mounted=False, tracing_dir=False)
    result = run(fake, FakeOps(fake))
    assert not result.available and "does not exist" in result.reason_unavailable


def test_lockdown_confidentiality(tmp_path):
    fake = FakeTracefs(tmp_path)
    security = tmp_path / "sys/kernel/security"
    security.mkdir(parents=True)
    (security / "lockdown").write_text("none integrity [confidentiality]\n")
    with (tmp_path / "proc/self/mountinfo").open("a") as f:
        f.write("30 22 0:7 / /sys/kernel/security rw - securityfs securityfs rw\n")
    result = run(fake, FakeOps(fake))
    assert not result.available and "lockdown" in result.reason_unavailable


def test_leftovers_of_dead_pids_go_and_nothing_else(tmp_path):
    fake = FakeTracefs(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    for name in (f"guestcheck-{dead_pid}", f"guestcheck-{os.getppid()}", "othertool-test", "guestcheck-x",
                 f"guestcheck-{dead_pid}-copy"):
        fake.instance(name).mkdir(parents=True)
    ops = FakeOps(fake)
    assert cleanup_leftovers(fake.roots, ops) == [f"guestcheck-{dead_pid}"]
    left = sorted(p.name for p in (fake.top / "instances").iterdir())
    assert left == sorted([f"guestcheck-{os.getppid()}", "othertool-test", "guestcheck-x",
                           f"guestcheck-{dead_pid}-copy"])


def test_signal_handlers_are_put_back_and_the_signal_still_acts(tmp_path):
    fake = FakeTracefs(tmp_path)
    ops = FakeOps(fake, lines=[line()])
    got = []
    previous = signal.signal(signal.SIGHUP, lambda s, f: got.append(s))
    try:
        trace = DropTrace(fake.roots, ops=ops)
        with trace:
            assert signal.getsignal(signal.SIGHUP) == trace._on_signal
            os.kill(os.getpid(), signal.SIGHUP)
            assert not fake.instance(instance_name()).exists()  # removed by the handler, before the caller's runs
        assert got == [signal.SIGHUP] and trace.result().events_counted == 1
        assert signal.getsignal(signal.SIGHUP) is not trace._on_signal
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_sigint_still_interrupts(tmp_path):
    fake = FakeTracefs(tmp_path)
    # Python's own handler, whatever this test run inherited (a background job starts with SIGINT ignored)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), DropTrace(fake.roots, ops=FakeOps(fake)):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)
    assert not fake.instance(instance_name()).exists()


def test_fixture_formats_are_there():
    assert (DATA / "kfree_skb_format-6.18").exists() and "reason: %s" in format_text("6.1")


def test_a_signal_ignored_before_the_window_stays_ignored(tmp_path):
    fake = FakeTracefs(tmp_path)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with DropTrace(fake.roots, ops=FakeOps(fake)) as trace:
            os.kill(os.getpid(), signal.SIGHUP)
        assert trace.result() is not None and not fake.instance(instance_name()).exists()
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
