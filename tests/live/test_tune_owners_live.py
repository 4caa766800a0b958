"""`tune apply` against an active TuneD profile, on a real kernel: a network namespace we make, files in a
temporary root (`tune --root TMP`). TuneD's profile lives in TMP/usr/lib/tuned, its choice in
TMP/etc/tuned/active_profile, as TuneD lays them out; the namespace's own sysctls are the ones at stake.
"""

from __future__ import annotations

import pytest

from tests.live.test_tune_live import sysctls, tune
from tests.netns import netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns]


def test_apply_is_refused_where_tuned_sets_the_same_key_and_force_applies_it(tmp_path):
    (tmp_path / "etc/tuned").mkdir(parents=True)
    (tmp_path / "etc/tuned/active_profile").write_text("site-tuned\n")
    (tmp_path / "usr/lib/tuned/site-base").mkdir(parents=True)
    (tmp_path / "usr/lib/tuned/site-base/tuned.conf").write_text("[sysctl]\nnet.ipv4.tcp_fin_timeout = 45\n")
    (tmp_path / "etc/tuned/site-tuned").mkdir(parents=True)
    (tmp_path / "etc/tuned/site-tuned/tuned.conf").write_text("[main]\ninclude=site-base\n[sysctl]\nvm.swappiness=10\n")
    with netns() as ns:
        before = sysctls(ns)
        out = tune(ns, tmp_path, "apply", "many-connections")
        assert out.returncode == 3, out.stdout + out.stderr
        assert out.stderr.strip().startswith("Error: refusing: another agent would put its own value back "
                                             "(net.ipv4.tcp_fin_timeout: TuneD: active profile site-tuned sets "
                                             "net.ipv4.tcp_fin_timeout = 45")
        assert sysctls(ns) == before  # nothing written
        assert not (tmp_path / "etc/sysctl.d/90-guestcheck.conf").exists()
        assert not (tmp_path / "var/lib/guestcheck/tune-state.json").exists()
        out = tune(ns, tmp_path, "apply", "many-connections", "--force")
        assert out.returncode == 0, out.stderr
        assert "overridden by --force: net.ipv4.tcp_fin_timeout: TuneD" in out.stdout
        assert sysctls(ns)["net.ipv4.tcp_fin_timeout"] == "15"
        assert tune(ns, tmp_path, "rollback").returncode == 0
        assert sysctls(ns) == before
