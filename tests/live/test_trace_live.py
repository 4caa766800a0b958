"""The drop-reason tracer on the real kernel: each reason counted for the packets we dropped on purpose in our own
namespaces, and every piece of borrowed kernel state given back (instance, mount), after a signal and after a
SIGKILL (by the next run), with another tool's instance and the top-level buffer left as they were.

Each DropTrace runs in a child process under `unshare -m --propagation private` (tests/live/dropscenarios.py), so
a tracefs mount it makes is its own namespace's, never the host's.
"""

from __future__ import annotations

import shutil
import signal
import subprocess

import pytest

from tests.live import dropscenarios
from tests.live.dropscenarios import Window, tracefs_shell
from tests.netns import netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")]


def instances() -> set:
    return set(tracefs_shell("ls instances").split())


@pytest.mark.parametrize("scenario", dropscenarios.SCENARIOS, ids=[s.__name__ for s in dropscenarios.SCENARIOS])
def test_each_reason_is_counted_for_the_packets_dropped(scenario):
    outcome = scenario()
    result = outcome.doc["result"]
    assert result["available"] and result["machine_wide"], result["reason_unavailable"]
    assert outcome.induced >= dropscenarios.PACKETS * 0.9, outcome  # the scenario did drop what it meant to
    assert outcome.counted >= outcome.induced * 0.95, (outcome.name, outcome.counted, outcome.induced,
                                                       outcome.by_reason)
    # machine-wide: anything else dropping meanwhile is counted too; the excess is reported, not failed on
    print(f"{outcome.name}: induced {outcome.induced}, {outcome.reason} {outcome.counted}, all {outcome.by_reason}")
    assert outcome.doc["before"] == [] and outcome.doc["during"] == ["/sys/kernel/tracing"]
    assert outcome.doc["after"] == [], "the tracefs mount we made is gone"
    assert f"guestcheck-{outcome.doc['pid']}" in outcome.doc["instances"]
    assert f"guestcheck-{outcome.doc['pid']}" not in instances()


def test_the_cap_says_it_was_hit_and_counts_what_it_skipped():
    with netns("gcdrop") as a, Window("--cap", "300") as w:
        a.run(["python3", "-c", "import socket\ns=socket.socket(2,2)\n[s.sendto(b'x',('127.0.0.1',9)) "
               "for _ in range(2000)]"])
    result = w.doc["result"]
    assert result["capped"] and result["cap_per_second"] == 300
    assert result["events_counted"] <= 300 * (int(result["seconds"]) + 2)
    assert result["events_counted"] + result["events_not_counted"] >= 2000
    assert result["events_seen"] == result["events_counted"] + result["events_not_counted"]


def test_netfilter_needs_nft():
    if shutil.which("nft") is None:
        pytest.skip("needs nft (apt: nftables); the kernel has nf_tables (CONFIG_NF_TABLES=y)")
    assert dropscenarios.netfilter_drop in dropscenarios.SCENARIOS


def test_the_listen_overflow_has_no_reason():
    """The ledger's ListenOverflows, not a kfree_skb reason, covers it (issue 22's table)."""
    outcome = dropscenarios.listen_overflow()
    assert outcome.induced > 0 and outcome.counted == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_gives_the_instance_back(sig):
    w = Window().start()
    name = f"guestcheck-{w.proc.pid}"
    assert name in instances()
    w.proc.send_signal(sig)
    w.proc.communicate(timeout=30)
    assert name not in instances()
    if sig != signal.SIGINT:  # SIGINT becomes the child's KeyboardInterrupt, as it was before the window
        assert w.proc.returncode == -sig, "the signal still did what it did before: the process ended by it"


def test_sigkill_leftover_is_removed_by_the_next_run():
    w = Window().start()
    name = f"guestcheck-{w.proc.pid}"
    w.proc.kill()
    w.proc.wait()
    try:
        assert name in instances(), "SIGKILL leaves the instance (nothing can catch it)"
        with Window() as nxt:
            pass
        assert nxt.doc["removed"] == [name] and nxt.doc["result"]["available"]
        assert name not in instances()
    finally:
        tracefs_shell(f"[ -d instances/{name} ] && rmdir instances/{name} || true")


def test_another_tools_instance_and_the_top_level_are_untouched():
    top = ("cat tracing_on current_tracer set_event events/skb/kfree_skb/enable; "
           "grep -v '^#\\s*$' trace | sha256sum")
    other = "cat instances/othertool-test/tracing_on instances/othertool-test/events/skb/kfree_skb/enable"
    tracefs_shell("mkdir instances/othertool-test && echo 1 > instances/othertool-test/events/skb/kfree_skb/enable")
    try:
        before_top, before_other = tracefs_shell(top), tracefs_shell(other)
        with netns("gcdrop") as a, Window() as w:
            a.run(["python3", "-c", "import socket\ns=socket.socket(2,2)\n[s.sendto(b'x',('127.0.0.1',9)) "
                   "for _ in range(100)]"])
        assert w.counted("NO_SOCKET") >= 100
        assert "othertool-test" in w.doc["instances"] and "othertool-test" in instances()
        assert tracefs_shell(other) == before_other
        assert tracefs_shell(top) == before_top, "the top-level buffer and its switches are as they were"
        events = tracefs_shell("grep -c 'reason: NO_SOCKET' instances/othertool-test/trace || true")
        assert int(events.strip() or 0) >= 100, "the other tool's instance kept its own events"
    finally:
        tracefs_shell("rmdir instances/othertool-test || true")


def test_read_only_tracefs_is_one_line_and_nothing_made():
    with Window("--ro") as w:
        pass
    result = w.doc["result"]
    assert not result["available"] and result["reason_unavailable"].endswith("tracefs is mounted read-only")
    assert f"guestcheck-{w.doc['pid']}" not in instances()


def test_a_second_run_with_tracefs_already_mounted_does_not_mount_or_unmount():
    script = ("mount -t tracefs nodev /sys/kernel/tracing && "
              f"{dropscenarios.sys.executable} {dropscenarios.CHILD} --seconds 0.2 && "
              "grep -c ' /sys/kernel/tracing ' /proc/self/mountinfo")
    out = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec", script], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "1", "the mount that was there is still there, once"
    assert '"before": ["/sys/kernel/tracing"]' in lines[-2] and '"after": ["/sys/kernel/tracing"]' in lines[-2]

