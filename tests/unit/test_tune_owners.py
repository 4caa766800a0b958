"""`tune` before changing what another agent owns (guestcheck/tune/owners.py): warn, or refuse without --force.

TuneD applies its active profile's [sysctl] at every start, after the sysctl.d files (redhat-performance/tuned
#816), so a key it sets is refused; irqbalance moves IRQs every 10 s, so IRQ and RPS changes are refused.
"""

from __future__ import annotations

import pytest

from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune.service import owners_guard as guard
from tests.tune_fake import FakeKernel, one_line_error, tune


def tuned(base, key="net.ipv4.tcp_fin_timeout", value="30", profile="my-tuned"):
    (base / "etc/tuned").mkdir(parents=True, exist_ok=True)
    (base / "etc/tuned/active_profile").write_text(f"{profile}\n")
    d = base / f"usr/lib/tuned/{profile}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "tuned.conf").write_text(f"[main]\nsummary=test\n[sysctl]\n{key} = {value}\n")


def test_a_tuned_key_with_another_value_is_refused(tmp_path):
    tuned(tmp_path)
    roots = Roots.under(str(tmp_path))
    with pytest.raises(TuneError, match="refusing: another agent would put its own value back "
                                        r"\(net.ipv4.tcp_fin_timeout: TuneD: active profile my-tuned"):
        guard(roots, {"sysctl:net.ipv4.tcp_fin_timeout": "15"})
    (line,) = guard(roots, {"sysctl:net.ipv4.tcp_fin_timeout": "15"}, force=True)
    assert line.startswith("overridden by --force: net.ipv4.tcp_fin_timeout: TuneD")
    (line,) = guard(roots, {"sysctl:net.ipv4.tcp_fin_timeout": "15"}, dry_run=True)
    assert line.startswith("apply would refuse without --force:")
    assert guard(roots, {"sysctl:net.core.somaxconn": "8192"}) == []  # a key TuneD leaves alone


def test_a_tuned_key_with_our_value_only_warns(tmp_path):
    tuned(tmp_path, key="net.core.somaxconn", value="16384")
    roots = Roots.under(str(tmp_path))
    (same,) = guard(roots, {"sysctl:net.core.somaxconn": "8192"}, raise_only={"net.core.somaxconn": True})
    assert same.startswith("also managed: net.core.somaxconn: TuneD") and same.endswith("(same value)")
    with pytest.raises(TuneError):  # not raise-only: 16384 is not 8192
        guard(roots, {"sysctl:net.core.somaxconn": "8192"})


def test_irqbalance_refuses_irq_and_rps_changes_and_others_warn(tmp_path):
    (tmp_path / "proc/777").mkdir(parents=True)
    (tmp_path / "proc/777/comm").write_text("irqbalance\n")
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/google_set_multiqueue").write_text("#!/bin/bash\n")
    roots = Roots.under(str(tmp_path))
    for setting in ("irq", "rps"):
        with pytest.raises(TuneError, match=f"{setting}: irqbalance: running"):
            guard(roots, {setting: None}, iface="eth0")
    (line,) = guard(roots, {"channels": None}, iface="eth0")
    assert line.startswith("also managed: channels: google_set_multiqueue: /usr/bin/google_set_multiqueue runs")


def test_tune_apply_refuses_a_key_an_active_tuned_profile_sets(tmp_path):
    k = FakeKernel(tmp_path)
    tuned(tmp_path)  # many-connections sets net.ipv4.tcp_fin_timeout = 15
    before = k.snapshot()
    error = one_line_error(tune(tmp_path, "apply", "many-connections"))
    assert "another agent would put its own value back (net.ipv4.tcp_fin_timeout: TuneD" in error
    assert "--force" in error and k.snapshot() == before and not k.persist.exists()
    out = tune(tmp_path, "apply", "many-connections", "--dry-run")
    assert out.returncode == 0 and "apply would refuse without --force: net.ipv4.tcp_fin_timeout" in out.stdout
    out = tune(tmp_path, "apply", "many-connections", "--force")
    assert out.returncode == 0, out.stderr
    assert "overridden by --force: net.ipv4.tcp_fin_timeout: TuneD" in out.stdout
    assert k.get("net.ipv4.tcp_fin_timeout") == "15"


# --- `tune offloads` gets the owners guard too (issue 20: every unit is guarded, offloads were not) ------------

def offloads_machine(tmp_path):
    from guestcheck.facts import Feature
    from tests.fakemachine import FakeMachine
    from tests.tune_fake import fake_ethtool_writer
    from tests.unit.test_tune_nics import OFF

    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver="virtio_net", bus="virtio", features=dict(OFF))
    et = fake_ethtool_writer(type(m.ethtool))(m.ethtool.drvinfos, m.ethtool.feature_sets, m.ethtool.channel_sets)
    et.calls, et.refuse = [], set()
    assert isinstance(OFF["rx-gro"], Feature)
    return m, et


def test_tune_offloads_says_who_else_owns_offloads(tmp_path):
    """TuneD's [net] section sets offloads at every start: said before the change, as for queues and rings."""
    from guestcheck.tune.service import apply_offloads

    m, et = offloads_machine(tmp_path)
    (tmp_path / "etc/tuned").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/tuned/active_profile").write_text("net-tuned\n")
    (tmp_path / "usr/lib/tuned/net-tuned").mkdir(parents=True)
    (tmp_path / "usr/lib/tuned/net-tuned/tuned.conf").write_text("[main]\nsummary=t\n[net]\nfeatures=tso off\n")
    result = apply_offloads("eth0", m.roots, dry_run=True, ethtool=et)
    assert result.said == ["also managed: offloads: TuneD: active profile net-tuned has a [net] section that sets "
                           "this at every start"]
    assert result.planned and et.calls == []


def owner_that_puts_back(roots):
    from guestcheck.judge.owners import Owner

    owner = Owner("NetworkManager", "manages eth0 and puts its offloads back", True)
    return lambda setting, iface: [owner] if setting == "offloads" and iface == "eth0" else []


def separate_streams_runner():
    """A CliRunner whose result has stdout and stderr apart: click 8.1 (Debian 12) needs mix_stderr=False, which
    click 8.2 removed (the streams are always apart there)."""
    import inspect

    from click.testing import CliRunner

    apart = "mix_stderr" in inspect.signature(CliRunner.__init__).parameters
    return CliRunner(**({"mix_stderr": False} if apart else {}))


def test_tune_offloads_is_refused_with_exit_3_when_an_owner_puts_offloads_back(tmp_path, monkeypatch):
    """The refusal: nothing written (no ethtool set call, no journal, no .link file), tune's exit code 3; --dry-run
    says that apply would refuse."""
    from guestcheck.tune.cli import tune as tune_group
    from guestcheck.tune.journal import load_state
    from guestcheck.tune.service import OwnersRefused, apply_offloads

    m, et = offloads_machine(tmp_path)
    monkeypatch.setattr("guestcheck.tune.service.owners_of", owner_that_puts_back)
    with pytest.raises(OwnersRefused, match=r"refusing: another agent would put its own value back \(offloads: "
                                            "NetworkManager: manages eth0") as refused:
        apply_offloads("eth0", m.roots, ethtool=et)
    assert refused.value.exit_code == 3
    assert et.calls == [] and load_state(m.roots) is None and not (tmp_path / "etc/systemd/network").exists()
    dry = apply_offloads("eth0", m.roots, dry_run=True, ethtool=et)
    assert dry.said == ["apply would refuse without --force: offloads: NetworkManager: manages eth0 and puts its "
                        "offloads back"]
    # the command: one line, exit 3, on the same fake root and NIC
    monkeypatch.setenv("GUESTCHECK_ROOT", str(tmp_path))
    monkeypatch.setattr("guestcheck.tune.ethtool_set.EthtoolWriter", lambda: et)
    out = separate_streams_runner().invoke(tune_group, ["offloads", "eth0"])
    assert out.exit_code == 3, out.output + out.stderr
    assert out.stderr.startswith("Error: refusing: another agent would put its own value back (offloads: "
                                 "NetworkManager") and len(out.stderr.strip().splitlines()) == 1
    assert et.calls == [] and load_state(m.roots) is None
    out = separate_streams_runner().invoke(tune_group, ["offloads", "eth0", "--dry-run"])
    assert out.exit_code == 0 and out.stdout.startswith("apply would refuse without --force: offloads:")
    # --force applies it anyway, as the refusal says (the owner is still named)
    out = separate_streams_runner().invoke(tune_group, ["offloads", "eth0", "--force", "--no-persist"])
    assert out.exit_code == 0, out.output + out.stderr
    assert et.calls and load_state(m.roots) is not None
