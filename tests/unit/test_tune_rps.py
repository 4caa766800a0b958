"""`tune rps IFACE [--cpus LIST]` (guestcheck/tune/units/rps.py) on a fake sysfs: every receive queue's
rps_cpus set and read back, the originals journaled first, the udev rule written and restored byte for byte,
verify and rollback; and the command line (exit codes, one-line errors, the owners guard, the sudo hint)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.cpus import cpu_list, parse_cpu_list
from guestcheck.facts import Rings
from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune.engine import rollback, touched_nic_units, verify_journal
from guestcheck.tune.journal import load_state, state_from_text
from guestcheck.tune.units.rps import QueueFiles, RpsUnit, chosen_cpus, cpu_ranges
from tests.fakemachine import FakeEthtool, FakeMachine
from tests.tune_fake import REPO, apply_rings, apply_rps, fake_ethtool_writer, one_line_error, tune

Writer = fake_ethtool_writer(FakeEthtool)
RULE = "etc/udev/rules.d/90-guestcheck-ens3.rules"


def machine(tmp_path, queues=2, cpus=4, **kw):
    m = FakeMachine(tmp_path)
    m.set_cpus(cpus)
    m.add_nic("ens3", driver="e1000", bus="pci", queues=queues, **kw)
    et = Writer(m.ethtool.drvinfos, m.ethtool.feature_sets, m.ethtool.channel_sets, m.ethtool.ring_sets)
    et.calls, et.refuse, et.perm_addrs = [], set(), {"ens3": "52:54:00:12:34:56"}
    return m, et


def masks(tmp_path, name="ens3"):
    q = tmp_path / f"sys/class/net/{name}/queues"
    return {d.name: (d / "rps_cpus").read_text().strip() for d in sorted(q.iterdir()) if d.name.startswith("rx-")}


def verify(m, et, monkeypatch):
    monkeypatch.setattr("guestcheck.tune.units.nic.EthtoolWriter", lambda: et)
    return verify_journal(m.roots, load_state(m.roots))


def test_every_queue_steers_to_every_online_cpu_journaled_persisted_verified_rolled_back(tmp_path, monkeypatch):
    m, et = machine(tmp_path)
    m.write("sys/class/net/ens3/queues/rx-1/rps_cpus", "00000000,00000002\n")  # padded, as the kernel reads it
    result = apply_rps("ens3", m.roots, chosen_cpus(m.roots, None), ethtool=et)
    assert result.done == ["rx-0: 0 (off) -> f (CPUs 0-3)", "rx-1: 2 (CPUs 1) -> f (CPUs 0-3)"]
    assert masks(tmp_path) == {"rx-0": "f", "rx-1": "f"}
    state = load_state(m.roots)
    assert state.rps == {"ens3": {"rx-0": "0", "rx-1": "2"}} and state.applied["rps"] == {"ens3": {"rx-0": "f",
                                                                                                   "rx-1": "f"}}
    assert touched_nic_units(state) == ["rps"]
    rule = (tmp_path / RULE).read_text()
    assert rule.splitlines()[1] == "# Why a udev rule: systemd 252's .link files have no setting for Receive " \
                                   "Packet Steering (rps_cpus)."
    assert rule.splitlines()[2] == ('ACTION=="add", SUBSYSTEM=="net", ATTR{address}=="52:54:00:12:34:56", '
                                    'ATTR{queues/rx-0/rps_cpus}="f", ATTR{queues/rx-1/rps_cpus}="f"')
    assert not (tmp_path / "etc/systemd/network/50-guestcheck-ens3.link").exists()  # no .link setting for RPS
    assert result.persisted == [f"{tmp_path / RULE} (systemd 252's .link files have no setting for Receive Packet "
                                "Steering (rps_cpus))"]
    v = verify(m, et, monkeypatch)
    assert v.ok and v.subject == "rps" and [c.key for c in v.checks] == ["ens3 rx-0", "ens3 rx-1",
                                                                         "ens3 next boot udev rule"]
    assert apply_rps("ens3", m.roots, {0, 1, 2, 3}, ethtool=et).nothing_to_do
    m.write("sys/class/net/ens3/queues/rx-0/rps_cpus", "1\n")  # drift, live
    drift = verify(m, et, monkeypatch)
    assert not drift.ok and [(c.key, c.live) for c in drift.checks if not c.ok] == [("ens3 rx-0", "1 (CPUs 0)")]
    m.write("sys/class/net/ens3/queues/rx-0/rps_cpus", "f\n")
    (tmp_path / RULE).write_text(rule.replace('rx-1/rps_cpus}="f"', 'rx-1/rps_cpus}="3"'))  # drift, at boot
    drift = verify(m, et, monkeypatch)
    assert [c.key for c in drift.checks if not c.ok] == ["ens3 next boot udev rule"]
    result = rollback(m.roots, ethtool=et)
    assert result.actions == ["ens3: restore RPS masks", f"remove {tmp_path / RULE}"]
    assert masks(tmp_path) == {"rx-0": "0", "rx-1": "2"} and not (tmp_path / RULE).exists()
    assert load_state(m.roots) is None


def test_a_rule_file_that_was_there_comes_back_byte_for_byte(tmp_path):
    m, et = machine(tmp_path)
    before = b"# the admin's, in Latin-1: caf\xe9\nACTION==\"add\", KERNEL==\"ens3\", ATTR{mtu}=\"1400\"\n"
    path = tmp_path / RULE
    path.parent.mkdir(parents=True)
    path.write_bytes(before)
    os.chmod(path, 0o640)
    apply_rps("ens3", m.roots, {1, 2}, ethtool=et)
    assert masks(tmp_path) == {"rx-0": "6", "rx-1": "6"} and 'ATTR{queues/rx-0/rps_cpus}="6"' in path.read_text()
    rollback(m.roots, ethtool=et)
    assert path.read_bytes() == before and os.stat(path).st_mode & 0o777 == 0o640


def test_rps_and_rings_share_the_interfaces_files_and_roll_back_together(tmp_path):
    m, et = machine(tmp_path, rings=Rings(rx_max=4096, tx_max=4096, rx=256, tx=256))
    apply_rings("ens3", m.roots, ethtool=et)
    apply_rps("ens3", m.roots, {0, 1}, ethtool=et)
    link = (tmp_path / "etc/systemd/network/50-guestcheck-ens3.link").read_text()
    rule = (tmp_path / RULE).read_text()
    assert "RxBufferSize=4096" in link and 'ATTR{queues/rx-1/rps_cpus}="3"' in rule and "ethtool" not in rule
    state = load_state(m.roots)
    assert touched_nic_units(state) == ["rings", "rps"]
    apply_rps("ens3", m.roots, {2}, ethtool=et)  # a second run: the first originals are kept
    assert load_state(m.roots).rps["ens3"] == {"rx-0": "0", "rx-1": "0"}
    assert 'ATTR{queues/rx-0/rps_cpus}="4"' in (tmp_path / RULE).read_text()
    rollback(m.roots, ethtool=et)
    assert masks(tmp_path) == {"rx-0": "0", "rx-1": "0"} and et.ring_sets["ens3"].rx == 256
    assert not (tmp_path / RULE).exists() and not (tmp_path / "etc/systemd/network/50-guestcheck-ens3.link").exists()


def test_no_persist_dry_run_and_a_queue_gone_before_rollback(tmp_path):
    m, et = machine(tmp_path)
    dry = apply_rps("ens3", m.roots, {0, 1, 2, 3}, dry_run=True, ethtool=et)
    assert dry.planned == {"rx-0": "0 (off) -> f (CPUs 0-3)", "rx-1": "0 (off) -> f (CPUs 0-3)"}
    assert masks(tmp_path) == {"rx-0": "0", "rx-1": "0"} and load_state(m.roots) is None
    assert not (tmp_path / "var/lib/guestcheck").exists()
    apply_rps("ens3", m.roots, {0, 1, 2, 3}, persist=False, ethtool=et)
    assert masks(tmp_path)["rx-1"] == "f" and not (tmp_path / RULE).exists()
    assert load_state(m.roots).links == {}
    (tmp_path / "sys/class/net/ens3/queues/rx-1/rps_cpus").unlink()  # fewer channels since: the queue is gone
    (tmp_path / "sys/class/net/ens3/queues/rx-1").rmdir()
    rollback(m.roots, ethtool=et)
    assert masks(tmp_path) == {"rx-0": "0"} and load_state(m.roots) is None


def test_a_write_the_kernel_refuses_changes_nothing(tmp_path, monkeypatch):
    m, et = machine(tmp_path)
    real = QueueFiles.set_rps

    def refuse_rx1(self, ifname, values, gone_ok=False):
        if values.get("rx-1") == "f":
            real(self, ifname, {"rx-0": values["rx-0"]})  # rx-0 taken, then rx-1 refused
            raise EthtoolError("refused", "rx-1/rps_cpus = f: a CPU the kernel cannot steer to")
        real(self, ifname, values, gone_ok=gone_ok)

    monkeypatch.setattr(QueueFiles, "set_rps", refuse_rx1)
    with pytest.raises(TuneError, match=r"cannot set the RPS masks of ens3: refused: .*nothing was changed"):
        apply_rps("ens3", m.roots, {0, 1, 2, 3}, ethtool=et)
    assert masks(tmp_path) == {"rx-0": "0", "rx-1": "0"} and load_state(m.roots) is None
    assert not (tmp_path / RULE).exists()


def test_refusals_before_anything_changes(tmp_path):
    m, et = machine(tmp_path)
    with pytest.raises(TuneError, match="no network interface named 'eth9'"):
        apply_rps("eth9", m.roots, {0}, ethtool=et)
    m.add_nic("dummy0", driver=None, bus=None, queues=0, ifindex=3)
    with pytest.raises(TuneError, match="dummy0 has no receive queue with an rps_cpus file"):
        apply_rps("dummy0", m.roots, {0}, ethtool=et)
    m.write("sys/class/net/ens3/queues/rx-0/rps_cpus", "zz\n")
    with pytest.raises(TuneError, match="cannot read the RPS masks of ens3"):
        apply_rps("ens3", m.roots, {0}, ethtool=et)
    m.write("sys/class/net/ens3/queues/rx-0/rps_cpus", "0\n")
    (tmp_path / "etc/udev/rules.d").mkdir(parents=True)
    os.symlink("/dev/null", tmp_path / RULE)  # the admin masked it
    with pytest.raises(TuneError, match="masked"):
        apply_rps("ens3", m.roots, {0}, ethtool=et)
    assert masks(tmp_path) == {"rx-0": "0", "rx-1": "0"} and load_state(m.roots) is None


@pytest.mark.parametrize("asked, error", [
    ("0-7", "--cpus 0-7: CPU 4-7 are not online (online: 0-3)"),
    ("4", "--cpus 4: CPU 4 is not online (online: 0-3)"),
    ("3-1", "--cpus '3-1': '3-1' is not a CPU number or a range like 0-3"),
    ("\u0663", "is not a CPU number"),  # an Arabic-Indic three: a digit to str.isdigit, not to the kernel
    ("0,,1", "'' is not a CPU number"),
    ("", "an empty CPU list"),
    ("0x3", "'0x3' is not a CPU number"),
    ("99999999", "is not a CPU number"),
])
def test_cpus_must_be_ascii_ranges_of_online_cpus(tmp_path, asked, error):
    m, _et = machine(tmp_path)
    with pytest.raises(TuneError) as e:
        chosen_cpus(m.roots, asked)
    assert error in str(e.value) and "\n" not in str(e.value)


def test_cpu_lists_both_ways():
    assert cpu_ranges({0, 1, 2, 3, 5, 7, 8}) == "0-3,5,7-8" and cpu_ranges({9}) == "9"
    assert parse_cpu_list("0-3,5") == {0, 1, 2, 3, 5}
    assert cpu_list("0-1,\u0663") == {0, 1}  # the lenient reader (sysfs, facts) skips what the kernel never writes


def test_chosen_cpus_default_and_list(tmp_path):
    m, _et = machine(tmp_path, cpus=8)
    assert chosen_cpus(m.roots, None) == set(range(8))
    assert chosen_cpus(m.roots, "0-3,5") == {0, 1, 2, 3, 5} and chosen_cpus(m.roots, " 7 ") == {7}


def test_the_journals_rps_values_are_checked(tmp_path):
    m, et = machine(tmp_path)
    apply_rps("ens3", m.roots, {0, 1}, ethtool=et)
    text = (tmp_path / "var/lib/guestcheck/tune-state.json").read_text()
    good = json.loads(text)
    for path, bad, error in ((("rps", "ens3", "rx-0"), "f\"\nRUN+=\"/bin/sh", "is not a CPU mask"),
                             (("applied", "rps", "ens3", "rx-0"), "ff,ff", "is not a CPU mask"),
                             (("links", "ens3", "rule_args", "R:rx-0"), "3\", RUN+=\"x", "is not a CPU mask")):
        doc = json.loads(text)
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
        with pytest.raises(TuneError, match=error):
            state_from_text(json.dumps(doc), "journal")
    doc = json.loads(text)
    doc["rps"]["ens3"] = {"tx-0": "0"}
    with pytest.raises(TuneError, match="is not a receive queue"):
        state_from_text(json.dumps(doc), "journal")
    doc = json.loads(text)
    doc["links"]["ens3"]["rule_args"] = {"R:../../x": "3"}
    with pytest.raises(TuneError, match="is not a receive queue"):
        state_from_text(json.dumps(doc), "journal")
    assert state_from_text(json.dumps(good), "journal").rps == {"ens3": {"rx-0": "0", "rx-1": "0"}}


def test_the_unit_shows_masks_for_people():
    unit = RpsUnit()
    assert unit.show("0") == "0 (off)" and unit.show("ff,00000001") == "ff,00000001 (CPUs 0,32-39)"
    assert unit.link_settings({"rx-0": "f"}) == ({}, {"R:rx-0": "f"})


# --- the command line -------------------------------------------------------------------------------------



def test_cli_rps_dry_run_apply_verify_rollback(tmp_path):
    machine(tmp_path)
    dry = tune(tmp_path, "rps", "ens3", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.splitlines() == [
        "  would set rx-0: 0 (off) -> f (CPUs 0-3)", "  would set rx-1: 0 (off) -> f (CPUs 0-3)",
        "dry run: nothing was changed"]
    assert masks(tmp_path) == {"rx-0": "0", "rx-1": "0"}
    out = tune(tmp_path, "rps", "ens3", "--cpus", "1-2")
    assert out.returncode == 0, out.stderr
    assert "  ens3: rx-0: 0 (off) -> 6 (CPUs 1-2)" in out.stdout.splitlines()
    assert f"persisted for the next boot in {tmp_path / RULE} (systemd 252's .link files have no setting for " \
           "Receive Packet Steering (rps_cpus))" in out.stdout
    assert masks(tmp_path) == {"rx-0": "6", "rx-1": "6"}
    again = tune(tmp_path, "rps", "ens3", "--cpus", "1-2")
    assert again.stdout.strip() == "ens3: nothing to change (RPS already steers every receive queue to CPUs 1-2)"
    out = tune(tmp_path, "verify")
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "rps: verified"
    assert "  ok   ens3 rx-0: live 6 (CPUs 1-2), expected 6 (CPUs 1-2)" in out.stdout.splitlines()
    out = tune(tmp_path, "rollback")
    assert out.returncode == 0 and masks(tmp_path) == {"rx-0": "0", "rx-1": "0"} and not (tmp_path / RULE).exists()
    live = tune(tmp_path, "rps", "ens3", "--no-persist")
    assert "live only (--no-persist)" in live.stdout and not (tmp_path / RULE).exists()
    assert tune(tmp_path, "rollback").returncode == 0 and masks(tmp_path)["rx-0"] == "0"


@pytest.mark.parametrize("args, error", [
    (("rps", "ens3", "--cpus", "0-9"), "Error: --cpus 0-9: CPU 4-9 are not online (online: 0-3)"),
    (("rps", "ens3", "--cpus", "1;reboot"), "Error: --cpus '1;reboot': '1;reboot' is not a CPU number"),
    (("rps", "ens3", "--cpus", "\x1b[2J"), "Error: --cpus '\\x1b[2J': '\\x1b[2J' is not a CPU number"),
    (("rps", "eth9"), "Error: no network interface named 'eth9' here"),
])
def test_cli_rps_bad_input_is_one_line_and_exit_3(tmp_path, args, error):
    machine(tmp_path)
    line = one_line_error(tune(tmp_path, *args))
    assert line.startswith(error), line
    assert masks(tmp_path) == {"rx-0": "0", "rx-1": "0"} and not (tmp_path / "var/lib/guestcheck").exists()


def test_cli_rps_owners_guard_irqbalance(tmp_path):
    """irqbalance moves the queue's interrupt: a mask over every online CPU stays right, a smaller one may not."""
    machine(tmp_path)
    (tmp_path / "proc/777").mkdir(parents=True)
    (tmp_path / "proc/777/comm").write_text("irqbalance\n")
    line = one_line_error(tune(tmp_path, "rps", "ens3", "--cpus", "0-1"))
    assert "another agent would put its own value back (rps: irqbalance: running" in line and "--force" in line
    assert masks(tmp_path)["rx-0"] == "0"
    out = tune(tmp_path, "rps", "ens3", "--cpus", "0-1", "--force")
    assert out.returncode == 0 and out.stdout.startswith("overridden by --force: rps: irqbalance: running")
    assert tune(tmp_path, "rollback").returncode == 0
    out = tune(tmp_path, "rps", "ens3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("also managed: rps: irqbalance: running")
    assert out.stdout.splitlines()[0].endswith("(the mask covers every online CPU, wherever the interrupt goes)")
    assert masks(tmp_path)["rx-0"] == "f"


def test_cli_rps_not_root_gets_the_sudo_hint(tmp_path):
    machine(tmp_path)
    (tmp_path / "var/lib/guestcheck").mkdir(parents=True)
    (tmp_path / "var/lib/guestcheck/tune-state.json").write_text("{}")  # damaged: a TuneError, after the hint's check
    script = ("import os, sys; os.geteuid = lambda: 1000; sys.argv = ['guestcheck', 'tune', 'rps', 'ens3', "
              "'--cpus', '0-1']; from guestcheck.entry import main; main()")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=str(REPO),
                         env={**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(tmp_path)})
    line = one_line_error(out)
    assert line.endswith("(you are not root: try `sudo guestcheck tune rps ens3 --cpus 0-1`)"), line


def test_roots_in_queue_files_are_the_tuners(tmp_path):
    machine(tmp_path, queues=3)
    files = QueueFiles(Roots.under(str(tmp_path)))
    assert files.rx_queues("ens3") == ["rx-0", "rx-1", "rx-2"]
    with pytest.raises(AttributeError):
        files.perm_addr  # noqa: B018 (no ethtool behind it: identity.perm_addr takes this as "none")
