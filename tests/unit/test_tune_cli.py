"""`guestcheck tune ...` end to end on a fake machine (GUESTCHECK_ROOT): output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.tune_fake import REPO, FakeKernel


def tune(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "guestcheck", "tune", *args], capture_output=True, text=True,
                          timeout=60, cwd=str(REPO),
                          env={**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(tmp_path),
                               "GUESTCHECK_PROFILES": str(REPO / "profiles"), **(env or {})})


def one_line_error(out):
    assert out.returncode == 3 and "Traceback" not in out.stderr  # README: tune could not do it
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    return lines[0]


def test_list_show_diff(tmp_path):
    FakeKernel(tmp_path)
    out = tune(tmp_path, "list")
    assert out.returncode == 0
    assert [ln.split()[0] for ln in out.stdout.splitlines()] == ["latency", "many-connections", "throughput", "wan"]
    assert "needs guaranteed memory" in out.stdout
    out = tune(tmp_path, "show", "wan")
    assert "includes: throughput" in out.stdout and "net.ipv4.tcp_rmem = >4096 87380 16777216" in out.stdout
    assert "why: BBR keeps throughput up" in out.stdout
    out = tune(tmp_path, "diff", "throughput")
    assert out.returncode == 0
    assert "set      net.ipv4.tcp_rmem: 4096 131072 6291456 -> 4096 131072 16777216" in out.stdout
    assert "keep     net.ipv4.tcp_window_scaling = 1  (already set)" in out.stdout


def test_apply_verify_rollback_round_trip(tmp_path):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    out = tune(tmp_path, "apply", "many-connections", "--dry-run")
    assert out.returncode == 0 and "would apply many-connections: 6 key(s) written" in out.stdout
    assert "dry run: nothing was changed" in out.stdout and k.snapshot() == before
    out = tune(tmp_path, "apply", "many-connections")
    assert out.returncode == 0, out.stderr
    assert f"persisted in {tmp_path}/etc/sysctl.d/90-guestcheck.conf" in out.stdout
    out = tune(tmp_path, "apply", "many-connections")
    assert "many-connections: nothing to change" in out.stdout
    out = tune(tmp_path, "verify")
    assert out.returncode == 0 and out.stdout.strip().endswith("many-connections: verified")
    assert tune(tmp_path, "verify", "many-connections").returncode == 0
    k.set("net.ipv4.tcp_fin_timeout", "30")  # someone changed it since
    out = tune(tmp_path, "verify")
    assert out.returncode == 1 and "DIFF net.ipv4.tcp_fin_timeout: live 30, expected 15" in out.stdout
    assert "NOT in force" in out.stdout
    out = tune(tmp_path, "rollback", "--dry-run")
    assert "net.ipv4.tcp_fin_timeout: 30 -> 60" in out.stdout and k.get("net.ipv4.tcp_fin_timeout") == "30"
    out = tune(tmp_path, "rollback")
    assert out.returncode == 0 and k.snapshot() == before
    assert "nothing to roll back" in tune(tmp_path, "rollback").stdout


def test_verify_reports_a_file_that_wins_at_boot(tmp_path):
    k = FakeKernel(tmp_path)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/sysctl.conf").write_text("net.ipv4.tcp_fin_timeout = 30\n")
    out = tune(tmp_path, "apply", "many-connections")
    assert f"boot order:  net.ipv4.tcp_fin_timeout: at boot {tmp_path}/etc/sysctl.conf:1 wins with 30" in out.stdout
    out = tune(tmp_path, "verify")
    assert out.returncode == 1 and "the profile's 15 is LOST after a reboot" in out.stdout
    assert k.get("net.ipv4.tcp_fin_timeout") == "15"


def test_memory_guard_refuses_and_force_overrides(tmp_path):
    k = FakeKernel(tmp_path)
    facts = tmp_path / "facts.json"
    balloon = {"kind": "virtio-balloon", "bound": True, "inflated_bytes": 2 * 1024**3}
    facts.write_text(json.dumps({"schema": "guestcheck.facts/1",
                                 "memory": {"total_bytes": 8 * 1024**3, "balloons": [balloon]}}))
    out = tune(tmp_path, "apply", "throughput", "--facts", str(facts))
    line = one_line_error(out)
    assert line.startswith("Error: refusing throughput: memory is not guaranteed (virtio-balloon bound")
    assert line.endswith("(--force applies it anyway)")
    assert k.get("net.core.rmem_max") == "212992"
    out = tune(tmp_path, "apply", "throughput", "--facts", str(facts), "--force")
    assert out.returncode == 0 and "memory guard overridden by --force" in out.stdout
    assert k.get("net.core.rmem_max") == "16777216"
    tune(tmp_path, "rollback")
    facts.write_text(json.dumps({"schema": "guestcheck.facts/1", "memory": {"total_bytes": 8 * 1024**3}}))
    out = tune(tmp_path, "apply", "throughput", "--facts", str(facts))  # doctor: guaranteed, 8 GiB
    assert out.returncode == 0 and "overridden" not in out.stdout and k.get("net.core.rmem_max") == "16777216"


@pytest.mark.parametrize("args,words", [
    (("show", "nosuch"), "no profile named 'nosuch'"),
    (("apply", "../../etc/passwd"), "bad profile name"),
    (("verify", "nosuch"), "no profile named"),
])
def test_bad_input_is_one_line(tmp_path, args, words):
    FakeKernel(tmp_path)
    assert words in one_line_error(tune(tmp_path, *args))


def test_a_broken_profile_names_its_file_and_line(tmp_path):
    FakeKernel(tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p/bad.conf").write_text("[sysctl]\nnet.ipv4.tcp_rmem = >lots\n")
    line = one_line_error(tune(tmp_path, "--profiles", str(tmp_path / "p"), "apply", "bad"))
    assert f"{tmp_path}/p/bad.conf:2: raise-only (>) needs whole numbers" in line
    assert "(broken:" in tune(tmp_path, "--profiles", str(tmp_path / "p"), "list").stdout


def test_a_damaged_journal_is_one_line(tmp_path):
    FakeKernel(tmp_path)
    (tmp_path / "var/lib/guestcheck").mkdir(parents=True)
    (tmp_path / "var/lib/guestcheck/tune-state.json").write_text("garbage")
    assert "tune-state.json is damaged" in one_line_error(tune(tmp_path, "rollback"))


def test_recommend_says_why(tmp_path):
    FakeKernel(tmp_path)
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"schema": "guestcheck.facts/1"}))
    out = tune(tmp_path, "recommend", "--facts", str(facts))
    assert out.returncode == 0 and out.stdout.startswith("recommended: ")
    assert "  found: " in out.stdout and "  so: " in out.stdout


def test_root_option_keeps_proc_live_and_moves_config(tmp_path):
    from guestcheck.tune.cli import config_roots

    r = config_roots(str(tmp_path))
    assert (r.proc, r.sys) == ("/proc", "/sys")
    assert (r.etc, r.var_lib, r.run, r.usr_lib) == (f"{tmp_path}/etc", f"{tmp_path}/var/lib", f"{tmp_path}/run",
                                                    f"{tmp_path}/usr/lib")
