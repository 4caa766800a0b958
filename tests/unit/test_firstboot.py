"""First boot: once per instance, bounded in time, never fails, leaves report, stamp and metrics behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from guestcheck import config, firstboot
from guestcheck.roots import Roots
from tests.fakemachine import REPO, FakeMachine


@pytest.fixture
def machine(tmp_path: Path) -> FakeMachine:
    """A KVM guest with one emulated e1000, a cloud-init instance-id and a machine-id."""
    m = FakeMachine(tmp_path / "root")
    m.set_dmi(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)")
    m.add_nic("ens3", driver="e1000", pci_id="8086:100e", speed=1000, duplex="full")
    m.write("etc/machine-id", "0123456789abcdef0123456789abcdef\n")
    set_instance(m, "i-0abc")
    return m


def set_instance(m: FakeMachine, iid: str, key: str = "instance_id") -> None:
    m.write("run/cloud-init/instance-data.json", json.dumps({"v1": {key: iid, "cloud_name": "nocloud"}}))


def fake_collect(m: FakeMachine):
    return lambda roots, sample: m.collect()


def run(m: FakeMachine, **kw: Any) -> tuple[firstboot.Outcome, list[str]]:
    lines: list[str] = []
    kw.setdefault("collect", fake_collect(m))
    outcome = firstboot.run(m.roots, emit=lines.append, **kw)
    return outcome, lines


def report(m: FakeMachine) -> dict:
    return json.loads((m.base / "var/lib/guestcheck/report.json").read_text())


# --- which instance ---------------------------------------------------------------------------------

def test_instance_from_cloud_init(machine):
    assert firstboot.current_instance(machine.roots) == firstboot.Instance("i-0abc", "cloud-init")


def test_instance_from_cloud_init_hyphenated_key(machine):
    set_instance(machine, "iid-local01", key="instance-id")
    assert firstboot.current_instance(machine.roots) == firstboot.Instance("iid-local01", "cloud-init")


@pytest.mark.parametrize("content", ["{broken", '{"v1": {"instance_id": ""}}', '{"v1": []}', "[]"])
def test_machine_id_when_cloud_init_says_nothing_useful(machine, content):
    machine.write("run/cloud-init/instance-data.json", content)
    assert firstboot.current_instance(machine.roots) == firstboot.Instance(
        "0123456789abcdef0123456789abcdef", "machine-id")


@pytest.mark.parametrize("content", ["", "uninitialized\n"])
def test_no_identity_at_all(machine, content):
    os.unlink(machine.base / "run/cloud-init/instance-data.json")
    machine.write("etc/machine-id", content)
    assert firstboot.current_instance(machine.roots) == firstboot.Instance("", "none")


# --- settings --------------------------------------------------------------------------------------------

def test_defaults_without_a_config_file(machine):
    s = config.load_settings(machine.roots)
    assert (s.enabled, s.profile, s.textfile_dir, s.metrics, s.timeout_seconds, s.problems) == (
        True, None, None, True, 120.0, [])


def test_shipped_config_is_all_defaults(machine):
    machine.write("etc/guestcheck/guestcheck.conf", (REPO / "debian/conf/guestcheck.conf").read_text())
    assert config.load_settings(machine.roots) == config.Settings()


def test_settings_are_read(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = throughput\n"
                  "textfile_dir = /srv/metrics\ntimeout = 30\nsample = 0.5\nenabled = yes\n")
    s = config.load_settings(machine.roots)
    assert (s.profile, s.textfile_dir, s.timeout_seconds, s.sample_seconds, s.problems) == (
        "throughput", "/srv/metrics", 30.0, 0.5, [])


@pytest.mark.parametrize("text,problem", [
    ("[firstboot]\ntimeout = soon\n", "timeout = 'soon' ignored"),
    ("[firstboot]\ntimeout = 0\n", "'0' is not a number of seconds from 1 to 3600"),
    ("[firstboot]\ntimeout = 1_0\n", "'1_0' is not a number of seconds from 1 to 3600"),
    ("[firstboot]\nsample = " + "9" * 400 + "\n", "'99999999999999999999...' is not a number of seconds from 0 to 60"),
    ("[firstboot]\nenabled = maybe\n", "enabled = 'maybe' ignored: expected yes or no"),
    ("[firstboot]\ntextfile_dir = relative/dir\n", "expected an absolute path"),
    ("[firstboot]\nprofle = throughput\n", "profle = 'throughput' ignored: unknown key"),
    ("profile = throughput\n", "is not an INI file"),
])
def test_bad_settings_are_noted_and_defaulted(machine, text, problem):
    machine.write("etc/guestcheck/guestcheck.conf", text)
    s = config.load_settings(machine.roots)
    assert len(s.problems) == 1 and problem in s.problems[0], s.problems
    assert s.profile is None and s.timeout_seconds == 120.0 and s.enabled


# --- once per instance -----------------------------------------------------------------------------------

def test_first_boot_checks_and_writes_report_and_stamp(machine):
    outcome, lines = run(machine)
    assert outcome.ran and outcome.status == "critical" and outcome.problems == []
    doc = report(machine)
    assert doc["schema"] == "guestcheck.doctor/1" and doc["status"] == "critical"
    assert {(f["id"], f["subject"]) for f in doc["findings"]} >= {("NIC-EMULATED", "ens3")}
    assert doc["firstboot"]["instance_id"] == "i-0abc"
    assert doc["firstboot"]["instance_source"] == "cloud-init"
    stamp = json.loads((machine.base / "var/lib/guestcheck/firstboot.json").read_text())
    assert stamp["instance_id"] == "i-0abc" and stamp["status"] == "critical"
    assert lines[0] == "guestcheck firstboot: instance i-0abc (cloud-init): first boot, checking the network"
    assert any(ln.startswith("guestcheck firstboot: CRITICAL NIC-EMULATED [ens3] ") for ln in lines)
    assert lines[-1].startswith(f"guestcheck firstboot: report {machine.base}/var/lib/guestcheck/report.json")


def test_second_boot_of_the_same_instance_skips(machine):
    run(machine)
    before = (machine.base / "var/lib/guestcheck/report.json").read_bytes()
    calls = []
    outcome, lines = run(machine, collect=lambda roots, sample: calls.append(1))
    assert not outcome.ran and calls == []
    assert len(lines) == 1 and "instance i-0abc (cloud-init) was already checked at" in lines[0]
    assert "skipping" in lines[0]
    assert (machine.base / "var/lib/guestcheck/report.json").read_bytes() == before


def test_a_new_instance_from_the_same_image_checks_again(machine):
    run(machine)
    set_instance(machine, "i-0def")
    outcome, _ = run(machine)
    assert outcome.ran and report(machine)["firstboot"]["instance_id"] == "i-0def"


def test_forget_makes_the_next_boot_a_first_boot(machine):
    run(machine)
    removed = firstboot.forget_instance(machine.roots)
    assert sorted(os.path.basename(p) for p in removed) == ["firstboot.json", "report.json"]
    assert firstboot.forget_instance(machine.roots) == []
    outcome, _ = run(machine)
    assert outcome.ran


def test_force_checks_again(machine):
    run(machine)
    outcome, _ = run(machine, force=True)
    assert outcome.ran


def test_disabled_does_nothing(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nenabled = no\n")
    outcome, lines = run(machine)
    assert not outcome.ran and lines == [
        f"guestcheck firstboot: disabled in {machine.base}/etc/guestcheck/guestcheck.conf; nothing to do"]
    assert not (machine.base / "var/lib/guestcheck").exists()


def test_machine_id_keys_the_stamp_without_cloud_init(machine):
    os.unlink(machine.base / "run/cloud-init/instance-data.json")
    outcome, _ = run(machine)
    assert outcome.ran and outcome.instance.source == "machine-id"
    assert not run(machine)[0].ran
    machine.write("etc/machine-id", "fedcba9876543210fedcba9876543210\n")  # a clone with a fresh machine-id
    assert run(machine)[0].ran


# --- profile -----------------------------------------------------------------------------------------

def test_profile_only_when_the_config_says_so(machine):
    calls: list[tuple[str, Roots]] = []

    def applier(name: str, roots: Roots) -> str:
        calls.append((name, roots))
        return "3 settings changed"

    run(machine, apply_profile=applier)
    assert calls == []
    assert report(machine)["firstboot"]["profile"] is None
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = throughput\n")
    _, lines = run(machine, apply_profile=applier, force=True)
    assert calls == [("throughput", machine.roots)]
    assert "guestcheck firstboot: profile throughput: 3 settings changed" in lines
    fb = report(machine)["firstboot"]
    assert (fb["profile"], fb["profile_result"]) == ("throughput", "3 settings changed")


def test_a_failing_profile_is_a_problem_not_a_failure(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = nosuch\n")

    def applier(name: str, roots: Roots) -> str:
        raise RuntimeError("no profile named 'nosuch'")

    outcome, lines = run(machine, apply_profile=applier)
    assert outcome.ran and outcome.status == "critical"
    assert "guestcheck firstboot: problem: profile nosuch not applied: no profile named 'nosuch'" in lines
    assert report(machine)["firstboot"]["problems"] == ["profile nosuch not applied: no profile named 'nosuch'"]


# --- bounded, never failing ------------------------------------------------------------------------------

def test_gives_up_after_the_timeout(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\ntimeout = 1\n")

    def stuck(roots, sample):
        try:  # a collector that swallows errors must not swallow the time limit
            time.sleep(30)
        except Exception:
            time.sleep(30)

    start = time.monotonic()
    outcome, lines = run(machine, collect=stuck)
    assert time.monotonic() - start < 5
    assert outcome.ran and outcome.status == "unknown"
    assert "guestcheck firstboot: problem: the check did not finish within 1 s; gave up" in lines
    doc = report(machine)
    assert doc["status"] == "unknown" and doc["findings"] == []
    assert (machine.base / "var/lib/guestcheck/firstboot.json").exists()  # no retry loop on the next boot


def test_a_crashing_collector_is_a_problem(machine):
    def crash(roots, sample):
        raise ValueError("sysfs exploded")

    outcome, lines = run(machine, collect=crash)
    assert outcome.status == "unknown"
    assert "guestcheck firstboot: problem: the check failed: ValueError: sysfs exploded" in lines


def test_unwritable_state_is_a_problem_not_a_crash(machine):
    machine.write("var/lib/guestcheck", "a file where a directory should be")
    outcome, lines = run(machine)
    assert outcome.ran and outcome.status == "critical"
    assert any("cannot write" in p and "report.json" in p for p in outcome.problems)
    assert any("cannot write" in p and "firstboot.json" in p for p in outcome.problems)
    assert sum("problem: cannot write" in ln for ln in lines) == 2
    assert outcome.report is None
    assert "report.json" not in lines[-1] and "no report written (see the problems)" in lines[-1]


def test_a_device_at_the_report_path_is_written_into_not_replaced(machine):
    # the report is an output: /dev/null (or a FIFO someone reads) put there stays what it is
    state = machine.base / "var/lib/guestcheck"
    state.mkdir(parents=True)
    os.mknod(state / "report.json", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    outcome, _ = run(machine)
    assert stat.S_ISCHR(os.lstat(state / "report.json").st_mode)
    assert outcome.report == str(state / "report.json") and not outcome.problems


def test_a_symlinked_report_path_is_not_followed_and_not_named(machine):
    state = machine.base / "var/lib/guestcheck"
    state.mkdir(parents=True)
    victim = machine.base / "etc/shadow"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("root:x:1::::::\n")
    (state / "report.json").symlink_to(victim)
    outcome, lines = run(machine)
    assert victim.read_text() == "root:x:1::::::\n" and os.path.islink(state / "report.json")
    assert any(p.startswith(f"cannot write {state}/report.json: it is a symbolic link") for p in outcome.problems)
    assert outcome.report is None and "report.json" not in lines[-1]


# --- metrics ---------------------------------------------------------------------------------------------

def test_metrics_go_to_the_default_dir_only_if_node_exporter_made_it(machine):
    run(machine)
    default = machine.base / "var/lib/prometheus/node-exporter"
    assert not default.exists()
    default.mkdir(parents=True)
    outcome, lines = run(machine, force=True)
    assert outcome.textfile == str(default / "guestcheck.prom")
    assert 'guestcheck_check_severity{id="NIC-EMULATED",subject="ens3",severity="critical"} 3' in (
        default / "guestcheck.prom").read_text()
    assert lines[-1].endswith(f"metrics {default}/guestcheck.prom; `guestcheck explain ID` tells more")


def test_configured_metrics_dir_is_never_made(machine):
    # a typo must not grow a tree node_exporter never reads: a missing directory is a problem, as for doctor
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\ntextfile_dir = /srv/metrics\n")
    outcome, lines = run(machine)
    assert outcome.textfile is None and not (machine.base / "srv").exists()
    assert any(p.startswith(f"cannot write metrics into {machine.base}/srv/metrics: no such directory")
               for p in outcome.problems)
    assert ", metrics " not in lines[-1]
    (machine.base / "srv/metrics").mkdir(parents=True)
    outcome, _ = run(machine, force=True)
    assert outcome.textfile == str(machine.base / "srv/metrics/guestcheck.prom")
    assert "guestcheck_status{status=\"critical\"} 2" in Path(outcome.textfile).read_text()


def test_metrics_off(machine):
    (machine.base / "var/lib/prometheus/node-exporter").mkdir(parents=True)
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\ntextfile_dir = no\n")
    outcome, _ = run(machine)
    assert outcome.textfile is None
    assert os.listdir(machine.base / "var/lib/prometheus/node-exporter") == []


def test_timeout_still_writes_unknown_metrics(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\ntimeout = 1\ntextfile_dir = /m\n")
    (machine.base / "m").mkdir()
    run(machine, collect=lambda roots, sample: time.sleep(10))
    assert 'guestcheck_status{status="unknown"} 3' in (machine.base / "m/guestcheck.prom").read_text()


# --- the command ---------------------------------------------------------------------------------------

def command(machine: FakeMachine, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guestcheck", "firstboot", *args], capture_output=True, text=True,
                          timeout=120, cwd=str(REPO),
                          env={**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(machine.base)})


def test_command_runs_once_then_skips_then_forgets(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nsample = 0\n")
    first = command(machine)
    assert first.returncode == 0, first.stderr
    assert "guestcheck firstboot: instance i-0abc (cloud-init): first boot" in first.stdout
    assert "CRITICAL NIC-EMULATED [ens3]" in first.stdout
    second = command(machine)
    assert second.returncode == 0 and "already checked" in second.stdout
    forget = command(machine, "--forget")
    assert forget.returncode == 0 and "forgot" in forget.stdout
    assert "first boot, checking" in command(machine).stdout


def test_command_exits_0_even_when_everything_is_wrong(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nsample = 0\nprofile = nosuch\ntimeout = x\n")
    machine.write("var/lib/guestcheck", "not a directory")
    out = command(machine)
    assert out.returncode == 0
    assert "Traceback" not in out.stderr + out.stdout
    assert "problem: " in out.stdout


def test_clean_hook_calls_forget():
    hook = (REPO / "debian/conf/50-guestcheck").read_text()
    assert os.access(REPO / "debian/conf/50-guestcheck", os.X_OK)
    assert hook.rstrip().splitlines()[-1] == "exec /usr/bin/guestcheck firstboot --forget"


# --- the real tuner on a fake tree ---------------------------------------------------------------------

MANY_CONNECTIONS_LIVE = {
    "net/ipv4/tcp_tw_reuse": "2", "net/ipv4/tcp_fin_timeout": "60", "net/core/somaxconn": "4096",
    "net/ipv4/tcp_max_syn_backlog": "1024", "net/core/netdev_max_backlog": "1000",
    "net/ipv4/ip_local_port_range": "32768\t60999",
}


def test_profile_applied_through_the_tuner(machine):
    for key, value in MANY_CONNECTIONS_LIVE.items():
        machine.write(f"proc/sys/{key}", value + "\n")
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = many-connections\n")
    outcome, _ = run(machine, apply_profile=firstboot.apply_with_tuner)
    assert outcome.problems == [], outcome.problems
    assert outcome.profile_result.startswith("applied, 6 key(s) written, persisted in ")
    assert (machine.base / "proc/sys/net/core/somaxconn").read_text().strip() == "8192"
    assert "net.core.somaxconn = 8192" in (machine.base / "etc/sysctl.d/90-guestcheck.conf").read_text()
    assert (machine.base / "var/lib/guestcheck/tune-state.json").exists()  # rollback stays possible


def test_a_guarded_profile_is_refused_without_guaranteed_memory(machine):
    from tests.tune_fake import STOCK

    for key in ("net.core.rmem_max", "net.core.wmem_max", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
        machine.write(f"proc/sys/{key.replace('.', '/')}", STOCK[key] + "\n")  # below the profile's 16 MiB
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = throughput\n")
    outcome, _ = run(machine, apply_profile=firstboot.apply_with_tuner)
    assert outcome.ran and outcome.profile_result.startswith("not applied: refused by its memory guard: ")
    assert not (machine.base / "etc/sysctl.d").exists()


def test_a_guarded_profile_that_raises_no_buffer_is_not_refused(machine):
    """As `tune apply`: a ceiling not above the value in force is no memory risk (this kernel has none of the
    buffer keys: nothing to raise, nothing to write)."""
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = throughput\n")
    outcome, _ = run(machine, apply_profile=firstboot.apply_with_tuner)
    assert outcome.ran and outcome.profile_result == "nothing to change, the kernel already has it"


def test_a_profile_whose_keys_tuned_would_put_back_is_refused(machine):
    """First boot applies as `tune apply` does: an active TuneD profile setting a key to another value would undo
    it at its next start, so nothing is applied (first boot has no --force)."""
    for key, value in MANY_CONNECTIONS_LIVE.items():
        machine.write(f"proc/sys/{key}", value + "\n")
    machine.write("etc/tuned/active_profile", "my-tuned\n")
    machine.write("usr/lib/tuned/my-tuned/tuned.conf", "[main]\nsummary=x\n[sysctl]\nnet.ipv4.tcp_fin_timeout = 30\n")
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = many-connections\n")
    outcome, _ = run(machine, apply_profile=firstboot.apply_with_tuner)
    assert outcome.ran and "refusing: another agent would put its own value back" in " ".join(
        [outcome.profile_result or "", *outcome.problems])
    assert (machine.base / "proc/sys/net/ipv4/tcp_fin_timeout").read_text().strip() == "60"
    assert not (machine.base / "etc/sysctl.d/90-guestcheck.conf").exists()


def test_an_unknown_profile_is_a_problem(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = nosuch\n")
    outcome, _ = run(machine, apply_profile=firstboot.apply_with_tuner)
    assert outcome.ran and len(outcome.problems) == 1 and "profile nosuch not applied" in outcome.problems[0]


# --- one time limit over everything, the profile apply included ---------------------------------------------

def many_connections_machine(machine: FakeMachine, timeout: int = 1) -> dict[str, str]:
    for key, value in MANY_CONNECTIONS_LIVE.items():
        machine.write(f"proc/sys/{key}", value + "\n")
    machine.write("etc/guestcheck/guestcheck.conf", f"[firstboot]\nprofile = many-connections\ntimeout = {timeout}\n")
    return {k: (machine.base / "proc/sys" / k).read_text() for k in MANY_CONNECTIONS_LIVE}


def test_the_time_limit_cuts_off_a_real_apply_and_the_journal_rolls_it_back(machine, monkeypatch):
    before = many_connections_machine(machine)
    monkeypatch.setenv("GUESTCHECK_TEST_PAUSE_AFTER_WRITE", "2")  # the tuner stops for 60 s after its 2nd write
    collected = []
    start = time.monotonic()
    outcome, lines = run(machine, apply_profile=firstboot.apply_with_tuner,
                         collect=lambda roots, sample: collected.append(1))
    assert time.monotonic() - start < 5
    after = {k: (machine.base / "proc/sys" / k).read_text() for k in MANY_CONNECTIONS_LIVE}
    assert after == before  # the two values written before the cut are back
    assert not (machine.base / "var/lib/guestcheck/tune-state.json").exists()
    assert not (machine.base / "etc/sysctl.d/90-guestcheck.conf").exists()
    assert outcome.profile_rolled_back and collected == []
    assert outcome.profile_result == ("not applied: cut off by the 1 s time limit; rolled back from its journal "
                                      "(2 change(s) undone)")
    assert ("guestcheck firstboot: problem: profile many-connections not applied: cut off by the 1 s time limit; "
            "rolled back from its journal (2 change(s) undone)") in lines
    fb = report(machine)["firstboot"]
    assert fb["profile_rolled_back"] is True and fb["profile_result"] == outcome.profile_result
    assert report(machine)["status"] == "unknown"
    assert (machine.base / "var/lib/guestcheck/firstboot.json").exists()


def test_a_cut_before_the_first_change_rolls_nothing_back(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = slow\ntimeout = 1\n")
    outcome, _ = run(machine, apply_profile=lambda name, roots: time.sleep(30))
    assert outcome.profile_result == "not applied: cut off by the 1 s time limit before it changed anything"
    assert not outcome.profile_rolled_back
    assert (machine.base / "var/lib/guestcheck/firstboot.json").exists()


def test_the_apply_and_the_check_share_one_time_limit(machine):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nprofile = slow\ntimeout = 4\n")
    start = time.monotonic()
    outcome, lines = run(machine, apply_profile=lambda name, roots: time.sleep(3) or "applied",
                         collect=lambda roots, sample: time.sleep(30))
    # 4 s in all, not 4 s for the check after 3 s of apply (7 s), nor the check's own 30 s
    assert time.monotonic() - start < 6.5
    assert outcome.profile_result == "applied" and outcome.status == "unknown"
    assert "guestcheck firstboot: problem: the check did not finish within 4 s; gave up" in lines


# --- hostile settings and instance data ----------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    "[" * 100000 + "]" * 100000,  # RecursionError in json
    '{"v1": {"instance_id": NaN}}', '{"v1": {"instance_id": 1e400}}', '{"v1": {"instance_id": ' + "9" * 5000 + "}}",
    '{"v1": {"instance_id": ["i-1"]}}', '{"v1": {"instance_id": {"a": 1}}}', '{"v1": "i-1"}', '"i-1"', "\xff\xfe",
    '{"v1": {"instance_id": "' + "x" * 5000 + '"}}',
])
def test_damaged_instance_data_falls_back_to_machine_id_and_still_stamps(machine, content):
    machine.write("run/cloud-init/instance-data.json", content)
    outcome, _ = run(machine)
    assert outcome.ran and outcome.instance == firstboot.Instance("0123456789abcdef0123456789abcdef", "machine-id")
    stamp = json.loads((machine.base / "var/lib/guestcheck/firstboot.json").read_text())
    assert stamp["instance_id"] == "0123456789abcdef0123456789abcdef"
    assert not run(machine)[0].ran  # the next boot does not repeat the work


@pytest.mark.parametrize("value", ["/etc/guestcheck/evil.conf", "../../tmp/x", ".hidden", "a/b", "many connections",
                                   "x;rm -rf /", "throughput\\", "e\u0301"])
def test_profile_takes_a_name_not_a_path(machine, value):
    machine.write("etc/guestcheck/guestcheck.conf", f"[firstboot]\nprofile = {value}\n")
    calls = []
    outcome, _ = run(machine, apply_profile=lambda name, roots: calls.append(name) or "applied")
    assert calls == []
    assert len(outcome.problems) == 1 and "no profile is applied" in outcome.problems[0]
    assert "expected a profile name" in outcome.problems[0]
    fb = report(machine)["firstboot"]
    assert fb["profile"] == value and fb["profile_result"].startswith("not applied: not a profile name")


@pytest.mark.parametrize("value", ["many-connections", "wan", "my_profile.v2", "-x", "_x"])
def test_profile_names_are_taken(machine, value):
    machine.write("etc/guestcheck/guestcheck.conf", f"[firstboot]\nprofile = {value}\n")
    assert config.load_settings(machine.roots).profile == value


@pytest.mark.parametrize("value", ["/srv/../../../tmp", "/srv/m/..", "/srv/\x1bm"])
def test_textfile_dir_stays_where_it_says(machine, value):
    machine.write("etc/guestcheck/guestcheck.conf", f"[firstboot]\ntextfile_dir = {value}\n")
    s = config.load_settings(machine.roots)
    assert s.textfile_dir is None and len(s.problems) == 1 and "without '..'" in s.problems[0]


def test_the_console_gets_no_control_characters(machine):
    set_instance(machine, "i-1\x1b]0;pwned\x07\r\n")
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nbad\x1b[2Jkey = 1\n")
    outcome, lines = run(machine)
    assert outcome.ran and lines
    for line in lines:
        assert line.isprintable(), line
    assert any("i-1\\x1b]0;pwned\\x07" in ln for ln in lines)


def test_first_boot_writes_the_ansible_fact_where_facts_d_exists(machine):
    run(machine)
    assert not (machine.base / "etc/ansible").exists()  # auto: no facts.d, no fact
    (machine.base / "etc/ansible/facts.d").mkdir(parents=True)
    outcome, lines = run(machine, force=True)
    fact = json.loads((machine.base / "etc/ansible/facts.d/guestcheck.fact").read_text())
    assert fact["status"] == "critical" and fact["nic_kinds"] == {"ens3": "emulated"}
    assert {"id": "NIC-EMULATED", "severity": "critical", "subject": "ens3"} in fact["findings"]
    assert outcome.ansible_fact and "Ansible fact" in lines[-1]


# --- "never hangs the boot": a FIFO at every path first boot reads ------------------------------------------------

RECORD_READS = """
import atexit, os, runpy, sys
root, log = sys.argv[1], sys.argv[2]
seen = []

def hook(event, args):
    if event != "open" or not isinstance(args[0], (str, bytes)):
        return
    path, mode, flags = os.fsdecode(args[0]), args[1], args[2] if isinstance(args[2], int) else 0
    reading = not set(mode) & set("wax+") if isinstance(mode, str) else flags & os.O_ACCMODE == os.O_RDONLY
    if reading and path.startswith(root + "/"):
        seen.append(os.path.relpath(path, root))

def save():
    with open(log, "w") as f:
        f.write("\\n".join(seen))

atexit.register(save)
sys.addaudithook(hook)
sys.argv = ["guestcheck", *sys.argv[3:]]
runpy.run_module("guestcheck", run_name="__main__", alter_sys=True)
"""


def paths_read(m: FakeMachine, log: Path, *args: str) -> set[str]:
    """Every path under the root that `guestcheck ARGS` opened for reading (Python's audit hook sees each open)."""
    out = subprocess.run([sys.executable, "-c", RECORD_READS, str(m.base), str(log), *args], capture_output=True,
                         text=True, timeout=120, cwd=str(REPO),
                         env={**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(m.base)})
    assert out.returncode == 0, out.stderr
    return set(log.read_text().split("\n")) - {""}


def fifos_at(m: FakeMachine, paths: set[str]) -> set[str]:
    """Each path (but a directory, opened to list it or to fsync a rename) made a FIFO; the ones made."""
    made = set()
    for rel in sorted(paths):
        path = m.base / rel
        if path.is_dir() and not path.is_symlink():
            continue
        if os.path.lexists(path) and not stat.S_ISFIFO(path.lstat().st_mode):
            path.unlink()  # a file, or a FIFO that the last run's atomic write (the stamp) replaced
        if not os.path.lexists(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(path)
        made.add(rel)
    return made


def test_a_fifo_at_every_path_first_boot_reads_never_hangs_the_boot(machine, tmp_path):
    machine.write("etc/guestcheck/guestcheck.conf", "[firstboot]\nsample = 0\ntimeout = 30\n")
    (machine.base / "var/lib/prometheus/node-exporter").mkdir(parents=True)
    read: set[str] = set()
    for round in range(4):  # a FIFO where a source was sends first boot to the next (machine-id): record again
        more = paths_read(machine, tmp_path / f"read{round}.log", "firstboot") - read
        if not more:
            break
        read |= more
        made = fifos_at(machine, read)
    for rel in ("etc/guestcheck/guestcheck.conf", "run/cloud-init/instance-data.json", "etc/machine-id",
                "var/lib/guestcheck/firstboot.json", "sys/class/net/ens3/mtu", "proc/sys/kernel/osrelease"):
        assert rel in made, sorted(made)  # the recording sees what it must
    fifos_at(machine, made)
    started = time.monotonic()
    out = command(machine)
    took = time.monotonic() - started
    assert out.returncode == 0 and "Traceback" not in out.stderr + out.stdout, out.stderr
    assert took < 60, took  # well inside the default 120 s limit that applies when guestcheck.conf is unreadable
    assert "not a regular file" in out.stdout, out.stdout  # guestcheck.conf, named as a problem
    assert "first boot, checking the network" in out.stdout, out.stdout  # the stamp, a FIFO, is no stamp
