"""`guestcheck tune ...` end to end on a fake machine (GUESTCHECK_ROOT): output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.tune_fake import REPO, FakeKernel, one_line_error, tune


def test_list_show_diff(tmp_path):
    FakeKernel(tmp_path)
    out = tune(tmp_path, "list")
    assert out.returncode == 0
    assert [ln.split()[0] for ln in out.stdout.splitlines()] == ["latency", "many-connections", "throughput", "wan",
                                                                   "wan-lossy"]
    assert "needs guaranteed memory" in out.stdout
    out = tune(tmp_path, "show", "wan")
    assert "includes: throughput" in out.stdout and "net.ipv4.tcp_rmem = >4096 131072 16777216" in out.stdout
    assert "source: TuneD network-throughput" in out.stdout
    assert "why: find a working MTU" in out.stdout and "tcp_congestion_control" not in out.stdout
    out = tune(tmp_path, "show", "wan-lossy")
    assert "includes: wan" in out.stdout and "why: BBR keeps throughput up under random loss" in out.stdout
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
    assert out.returncode == 1  # README: the change is in force, but a later file wins at boot
    assert out.stdout.splitlines()[-1] == (f"in force now, but at the next boot {tmp_path}/etc/sysctl.conf wins: "
                                           "it sets net.ipv4.tcp_fin_timeout = 30")
    assert tune(tmp_path, "apply", "many-connections", "--dry-run").returncode == 0
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


def test_a_custom_profile_may_include_a_shipped_one(tmp_path):
    """--profiles DIR comes first; the shipped profiles stay last in the search path."""
    k = FakeKernel(tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p/mine.conf").write_text("[main]\nsummary = mine\ninclude = many-connections\n\n[sysctl]\n"
                                          "# reason: test\nnet.ipv4.tcp_fin_timeout = 20\n")
    (tmp_path / "p/latency.conf").write_text("[main]\nsummary = the admin's latency\n")
    env = {"GUESTCHECK_PROFILES": ""}
    out = tune(tmp_path, "--profiles", str(tmp_path / "p"), "list", env=env)
    assert out.returncode == 0 and "broken" not in out.stdout, out.stdout
    listed = {ln.split()[0]: ln for ln in out.stdout.splitlines()}
    assert set(listed) == {"latency", "many-connections", "mine", "throughput", "wan", "wan-lossy"}
    assert "the admin's latency" in listed["latency"]  # DIR first: its profile shadows the shipped one
    out = tune(tmp_path, "--profiles", str(tmp_path / "p"), "apply", "mine", env=env)
    assert out.returncode == 0, out.stderr
    assert k.get("net.ipv4.tcp_fin_timeout") == "20" and k.get("net.core.somaxconn") == "8192"


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


def ram_facts(tmp_path, mib):
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"schema": "guestcheck.facts/1", "memory": {"total_bytes": mib * 1024**2}}))
    return str(facts)


def test_path_sized_apply_is_capped_by_memory_journaled_and_verified_against_what_was_applied(tmp_path):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    facts = ram_facts(tmp_path, 1024)  # 1/16 of 1 GiB = 64 MiB; 1 Gbit/s x 300 ms needs 2 x 37.5 MB
    out = tune(tmp_path, "diff", "wan", "--rate", "1G", "--rtt", "300ms", "--facts", facts)
    assert out.returncode == 0, out.stderr
    for words in ("path: 1.00 Gbit/s x 300 ms (--rtt 300ms)", "BDP: 37500000 bytes",
                  "overhead: x 2 (no tcp_adv_win_scale here: 2x, the default) = 75001856 bytes",
                  "memory cap: 1/16 of 1024.0 MiB guaranteed RAM = 67108864 bytes",
                  "ceiling: 67108864 bytes (64.0 MiB), bound by the memory (the path needs 75001856)",
                  "set      net.ipv4.tcp_rmem: 4096 131072 6291456 -> 4096 131072 67108864"):
        assert words in out.stdout, words
    assert k.snapshot() == before
    out = tune(tmp_path, "apply", "wan", "--rate", "1G", "--rtt", "300ms", "--facts", facts)
    assert out.returncode == 0, out.stderr
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 67108864" and k.get("net.core.wmem_max") == "67108864"
    assert k.get("net.ipv4.tcp_wmem") == "4096 65536 67108864"
    journal = json.loads(k.state.read_text())
    assert journal["sizing"]["ceiling_bytes"] == 67108864 and "bound by the memory" in journal["sizing"]["summary"]
    assert journal["sysctl"]["net.ipv4.tcp_rmem"]["applied"] == "4096 131072 67108864"
    assert "# reason: sized to 1.00 Gbit/s x 300 ms" in k.persist.read_text()
    for args in (("verify",), ("verify", "wan")):
        out = tune(tmp_path, *args)
        assert out.returncode == 0 and "buffers were sized to 1.00 Gbit/s x 300 ms" in out.stdout, out.stdout
    k.set("net.ipv4.tcp_rmem", "4096 131072 16777216")  # the static profile's value: no longer what was applied
    out = tune(tmp_path, "verify", "wan")
    assert out.returncode == 1 and "DIFF net.ipv4.tcp_rmem: live 4096 131072 16777216, expected >4096 131072 67108864" \
        in out.stdout
    assert tune(tmp_path, "rollback").returncode == 0 and k.snapshot() == before


def test_a_1_gib_guest_takes_a_ceiling_sized_to_its_path_but_not_the_fixed_16_mib(tmp_path):
    """MemTotal of a "1 GiB" guest is below throughput's min_ram_mb: the sized apply (what a FLOW-* fix runs) is
    held to its share of the RAM and allowed, saying so; the static 16 MiB profile is still refused."""
    k = FakeKernel(tmp_path)
    facts = ram_facts(tmp_path, 958)
    out = tune(tmp_path, "apply", "wan", "--rate", "200M", "--rtt", "28ms", "--facts", facts)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("memory guard: memory is guaranteed; RAM is 958 MiB, below the profile's 1024 MiB, "
                                 "but the ceiling is sized to the path: 1400832 bytes per socket, within 1/16 of it")
    assert k.get("net.core.rmem_max") == "1400832"  # raised to the sized ceiling
    assert k.get("net.ipv4.tcp_wmem") == "4096 65536 4194304"  # raise-only: the kernel's 4 MiB already holds it
    assert tune(tmp_path, "rollback").returncode == 0
    line = one_line_error(tune(tmp_path, "apply", "throughput", "--facts", facts))
    assert "RAM is 958 MiB, below the profile's minimum of 1024 MiB" in line


def test_a_sized_apply_never_lowers_the_kernel_and_a_static_apply_forgets_the_sizing(tmp_path):
    k = FakeKernel(tmp_path)
    facts = ram_facts(tmp_path, 4096)
    out = tune(tmp_path, "apply", "throughput", "--rate", "10M", "--rtt", "10ms", "--facts", facts)
    assert out.returncode == 0, out.stderr
    assert "ceiling: 28672 bytes" in out.stdout
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 6291456"  # 6 MiB stays: raise-only
    assert k.get("net.core.rmem_max") == "212992"
    assert tune(tmp_path, "apply", "throughput", "--facts", facts).returncode == 0
    assert "sizing" not in json.loads(k.state.read_text()) or json.loads(k.state.read_text())["sizing"] is None
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 16777216"


def test_a_sized_apply_needs_guaranteed_memory_even_for_a_profile_without_a_guard(tmp_path):
    k = FakeKernel(tmp_path)
    facts = tmp_path / "facts.json"
    balloon = {"kind": "virtio-balloon", "bound": True, "inflated_bytes": 2 * 1024**3}
    facts.write_text(json.dumps({"schema": "guestcheck.facts/1",
                                 "memory": {"total_bytes": 8 * 1024**3, "balloons": [balloon]}}))
    out = tune(tmp_path, "apply", "latency", "--rate", "400M", "--rtt", "300ms", "--facts", str(facts))
    assert one_line_error(out).startswith("Error: refusing latency sized to the path: memory is not guaranteed")
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 6291456"
    out = tune(tmp_path, "apply", "latency", "--rate", "400M", "--rtt", "300ms", "--facts", str(facts), "--force")
    assert out.returncode == 0 and "usable, NOT guaranteed, RAM" in out.stdout
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 30003200"


@pytest.mark.parametrize("args,words", [
    (("--rate", "400MB", "--rtt", "300ms"), "--rate: '400MB' is not a rate"),
    (("--rtt", "300ms"), "need --rate"),
    (("--rate", "400M"), "either --rtt TIME or --peer HOST"),
    (("--rate", "400M", "--rtt", "\x1b[31m"), "--rtt: '\\x1b[31m' is not a duration"),
    (("--rate", "400M", "--peer", "-x"), "--peer: bad peer"),
])
def test_bad_path_options_are_one_line(tmp_path, args, words):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    for command in ("apply", "diff"):
        assert words in one_line_error(tune(tmp_path, command, "wan", *args, "--facts", ram_facts(tmp_path, 4096)))
    assert words in one_line_error(tune(tmp_path, "recommend", *args, "--facts", ram_facts(tmp_path, 4096)))
    assert k.snapshot() == before and not (tmp_path / "var").exists()


def test_recommend_with_a_path_says_which_profile_and_sizes(tmp_path):
    FakeKernel(tmp_path)
    out = tune(tmp_path, "recommend", "--rate", "400M", "--rtt", "300ms", "--facts", ram_facts(tmp_path, 8192))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "recommended: wan"
    assert "  size: ceiling: 30003200 bytes (28.6 MiB), bound by the path" in lines
    assert "at 300 ms the path is long" in out.stdout
    assert lines[-1] == "try: guestcheck tune apply wan --rate 400M --rtt 300ms"
    out = tune(tmp_path, "recommend", "--rate", "10G", "--rtt", "1ms", "--facts", ram_facts(tmp_path, 8192))
    assert out.stdout.splitlines()[-1] == "try: guestcheck tune apply throughput --rate 10G --rtt 1ms"


def test_an_interrupted_apply_is_named_with_the_keys_never_written(tmp_path):
    k = FakeKernel(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(tmp_path),
           "GUESTCHECK_PROFILES": str(REPO / "profiles"), "GUESTCHECK_TEST_PAUSE_AFTER_WRITE": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "guestcheck", "tune", "apply", "many-connections"], env=env,
                            cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        written = [proc.stderr.readline() for _ in range(2)]
        assert all(w.startswith("guestcheck-test: wrote ") for w in written), written
    finally:
        proc.kill()
        proc.wait(timeout=30)
    out = tune(tmp_path, "verify")
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[-1] == "many-connections (interrupted): NOT in force"
    assert "offloads/queues" not in out.stdout and "None" not in out.stdout
    assert ("  problem: the apply of many-connections was interrupted: run `guestcheck tune apply many-connections` "
            "again or `guestcheck tune rollback`") in lines
    assert ("  problem: never written (still at their original values): net.core.netdev_max_backlog, "
            "net.core.somaxconn, net.ipv4.ip_local_port_range, net.ipv4.tcp_max_syn_backlog") in lines
    assert "  DIFF net.core.somaxconn: live 4096, expected 8192  (never written: the apply was interrupted before it)" \
        in lines
    for command in (("diff", "many-connections"), ("verify", "many-connections")):
        out = tune(tmp_path, *command)
        assert "the apply of many-connections was interrupted" in out.stdout, out.stdout
        assert "never written (still at their original values): net.core.netdev_max_backlog" in out.stdout
        assert "None" not in out.stdout
    assert tune(tmp_path, "rollback").returncode == 0
    assert k.get("net.ipv4.tcp_fin_timeout") == "60"


def test_recommend_says_when_the_kernel_already_holds_the_window(tmp_path):
    k = FakeKernel(tmp_path)
    k.set("net.ipv4.tcp_rmem", "4096 131072 33554432")
    out = tune(tmp_path, "recommend", "--rate", "100M", "--rtt", "20ms", "--facts", ram_facts(tmp_path, 8192))
    assert "so: the kernel's own tcp_rmem ceiling (33554432 bytes) already holds this path's window" in out.stdout
    assert "  size: BDP: 250000 bytes (244.1 KiB)" in out.stdout


def test_a_damaged_facts_file_is_tunes_exit_3(tmp_path):
    """Exit 1 means "drifted" or "lost at boot" for tune; a file it cannot use is "could not do it"."""
    FakeKernel(tmp_path)
    bad = tmp_path / "facts.json"
    bad.write_text('{"schema": "guestcheck.facts/1", "memory": {"total_bytes": NaN}}')
    line = one_line_error(tune(tmp_path, "apply", "throughput", "--facts", str(bad)))
    assert "is not JSON" in line or "is not a guestcheck facts file" in line


def test_the_memory_guards_refusal_escapes_a_container_name_from_a_marker_file(tmp_path):
    """The refusal names the container manager as /run/systemd/container spells it: an ESC, an OSC (which sets
    a terminal's title) and C1 controls in that file are shown escaped, never obeyed."""
    from tests.unit.test_output import raw_controls

    k = FakeKernel(tmp_path)
    (tmp_path / "run/systemd").mkdir(parents=True)
    (tmp_path / "run/systemd/container").write_text("evil\x1b]0;owned\x07\x9b2J\x9d\n")
    (tmp_path / "proc/meminfo").write_text("MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n")
    out = tune(tmp_path, "apply", "throughput")
    line = one_line_error(out)
    assert raw_controls(out.stderr) == [] and raw_controls(out.stdout) == [], out.stderr
    assert line.startswith("Error: refusing throughput: memory guarantee could not be confirmed "
                           "(evil\\x1b]0;owned\\x07\\x9b2j\\x9d container"), line
    assert k.get("net.core.rmem_max") == "212992"
    out = tune(tmp_path, "apply", "throughput", "--dry-run")  # the same reasons, as a note
    assert out.returncode == 0 and "evil\\x1b]0;owned" in out.stdout and raw_controls(out.stdout) == []


@pytest.mark.root  # becomes nobody, who must be able to read the checkout
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
@pytest.mark.parametrize("args,command", [
    (["offloads", "nosuch0"], "guestcheck tune offloads nosuch0"),
    (["queues", "lo", "--no-persist"], "guestcheck tune queues lo --no-persist"),
    (["rings", "lo", "--rx", "256", "--dry-run"], "guestcheck tune rings lo --rx 256 --dry-run"),
])
def test_non_root_nic_commands_suggest_sudo_as_apply_does(args, command):
    # as tests/unit/test_cli.py::test_non_root_tune_apply_suggests_sudo; tests/live/test_tune_cli_live.py shows
    # the same where the permission itself is what fails
    out = subprocess.run([sys.executable, "-m", "guestcheck", "tune", *args], capture_output=True, text=True,
                         timeout=60, cwd="/", preexec_fn=lambda: os.setuid(65534),
                         env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 3
    one_line_error(out)
    assert out.stderr.rstrip().endswith(f"(you are not root: try `sudo {command}`)")


def balloon_facts(tmp_path, mib, inflated=0, deflate_on_oom=True):
    facts = tmp_path / "balloon-facts.json"
    balloon = {"kind": "virtio-balloon", "bound": True, "device": "virtio0", "inflated_bytes": inflated,
               "deflate_on_oom": deflate_on_oom}
    facts.write_text(json.dumps({"schema": "guestcheck.facts/1",
                                 "memory": {"total_bytes": mib * 1024**2, "balloons": [balloon]}}))
    return str(facts)


def test_an_idle_deflate_on_oom_balloon_on_24_gib_lets_throughput_and_wan_apply(tmp_path):
    k = FakeKernel(tmp_path)
    facts = balloon_facts(tmp_path, 24 * 1024)
    out = tune(tmp_path, "diff", "throughput", "--facts", facts)
    assert out.returncode == 0, out.stderr
    assert "memory guard: apply allows throughput: memory is not guaranteed, but virtio-balloon bound (0 B " \
           "inflated now, deflate-on-oom on): per-socket ceilings up to 402653184 bytes (1/64 of MemTotal " \
           "24.0 GiB) are allowed: this ceiling is 16777216 bytes" in out.stdout
    out = tune(tmp_path, "apply", "throughput", "--facts", facts)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("memory guard: memory is not guaranteed, but virtio-balloon bound")
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 16777216"
    assert tune(tmp_path, "rollback").returncode == 0
    out = tune(tmp_path, "apply", "wan", "--rate", "1G", "--rtt", "50ms", "--facts", facts)
    assert out.returncode == 0, out.stderr
    assert "memory cap: 1/64 of 24576.0 MiB MemTotal, NOT guaranteed, allowed by virtio-balloon bound" in out.stdout
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 12500992"  # 2 x 6.25 MB, not the 384 MiB cap
    out = tune(tmp_path, "recommend", "--rate", "1G", "--rtt", "50ms", "--facts", facts)
    assert out.stdout.splitlines()[0] == "recommended: wan", out.stdout
    assert "note:" not in out.stdout


def test_a_256_mib_guest_with_a_balloon_is_still_refused_and_diff_and_recommend_say_so(tmp_path):
    k = FakeKernel(tmp_path)
    facts = balloon_facts(tmp_path, 256)
    line = one_line_error(tune(tmp_path, "apply", "throughput", "--facts", facts))
    assert line.startswith("Error: refusing throughput: memory is not guaranteed (virtio-balloon bound (0 B inflated "
                           "now, deflate-on-oom on)); RAM is 256 MiB, below the profile's minimum of 1024 MiB")
    assert k.get("net.ipv4.tcp_rmem") == "4096 131072 6291456"
    out = tune(tmp_path, "diff", "throughput", "--facts", facts)
    assert out.returncode == 0
    assert "memory guard: apply would refuse throughput without --force: memory is not guaranteed" in out.stdout
    out = tune(tmp_path, "recommend", "--facts", facts)
    assert out.stdout.splitlines()[0] == "recommended: latency"
    assert "  note: `guestcheck tune apply throughput` would be refused without --force: memory is not guaranteed" \
        in out.stdout
    assert tune(tmp_path, "apply", "throughput", "--facts", facts, "--force").returncode == 0


def test_a_sized_ceiling_not_above_the_value_in_force_is_never_refused(tmp_path):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    for facts in (balloon_facts(tmp_path, 24 * 1024), balloon_facts(tmp_path, 8 * 1024, inflated=2 * 1024**3)):
        out = tune(tmp_path, "apply", "wan", "--rate", "100M", "--rtt", "1ms", "--dry-run", "--facts", facts)
        assert out.returncode == 0, out.stderr
        assert "ceiling: 28672 bytes" in out.stdout and "refuse" not in out.stdout, out.stdout
        assert "memory guard" not in out.stdout
        out = tune(tmp_path, "diff", "wan", "--rate", "100M", "--rtt", "1ms", "--facts", facts)
        assert "memory guard: apply allows wan: no buffer ceiling rises above the value in force" in out.stdout
    assert k.snapshot() == before
