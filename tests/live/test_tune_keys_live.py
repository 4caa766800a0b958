"""Hostile sysctl keys, persist files and lock files against a real kernel: tune inside a network namespace
with --root TMP. Nothing outside /proc/sys may change; a victim file outside the root stays as it was."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.fuzz.harness import changed_outside, tree
from tests.live.test_tune_live import host_value, sysctls, tune
from tests.netns import netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns]
ALLOWED = ["etc/sysctl.d/90-guestcheck.conf", "var/lib/guestcheck/"]


def escape_to(victim: Path) -> str:
    """A key that, taken as a path under /proc/sys with "//" as "..", is the victim file."""
    return "net.//.//.//." + ".".join(victim.relative_to("/").parts)


def one_line_error(out) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 3 and len(lines) == 1 and lines[0].startswith("Error: "), (out.returncode, out.stderr)
    return lines[0]


def scene(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    (root / "tmp/victim").write_text("inside\n")
    victim = tmp_path / "victim"
    victim.write_text("original\n")
    return root, victim


@pytest.mark.parametrize("shape", ["escape", "escape-in-ifname-slot", "slashes", "namespace-guard"])
def test_a_key_that_leaves_proc_sys_is_refused(tmp_path, shape):
    root, victim = scene(tmp_path)
    swappiness = host_value("vm.swappiness")
    key = {"escape": escape_to(victim),
           "escape-in-ifname-slot": "net.ipv4.conf.//.//.//.//." + ".".join(victim.relative_to("/").parts),
           "slashes": "net/../../../" + "/".join(victim.relative_to("/").parts),
           "namespace-guard": "net.//.vm.swappiness"}[shape]
    value = swappiness if shape == "namespace-guard" else "pwned"  # harmless even if it got through
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "evil.conf").write_text(f"[sysctl]\nnet.ipv4.tcp_fin_timeout = 17\n{key} = {value}\n")
    with netns() as ns:
        before, files = sysctls(ns), tree(root)
        for command in (["diff", "evil"], ["apply", "evil", "--dry-run"], ["apply", "evil"], ["verify", "evil"]):
            line = one_line_error(tune(ns, root, "--profiles", str(profiles), *command))
            assert "is not a sysctl name" in line and "evil.conf:3" in line
        assert sysctls(ns) == before and changed_outside(files, tree(root), ALLOWED) == []
    assert victim.read_text() == "original\n" and (root / "tmp/victim").read_text() == "inside\n"
    assert host_value("vm.swappiness") == swappiness


def test_a_crafted_journal_cannot_make_rollback_write_outside(tmp_path):
    root, victim = scene(tmp_path)
    journal = root / "var/lib/guestcheck/tune-state.json"
    journal.parent.mkdir(parents=True)
    journal.write_text(json.dumps({"schema": "guestcheck.tune-state/1", "complete": True, "sysctl": {
        "net.ipv4.tcp_fin_timeout": {"original": "23", "applied": "15"},
        escape_to(victim): {"original": "pwned", "applied": "x"}}}))
    with netns() as ns:
        before, files = sysctls(ns), tree(root)
        for command in (["rollback", "--dry-run"], ["rollback"], ["verify"]):
            line = one_line_error(tune(ns, root, *command))
            assert "tune-state.json is damaged" in line and "is not a sysctl name" in line
        assert sysctls(ns) == before and changed_outside(files, tree(root), ALLOWED) == []
    assert victim.read_text() == "original\n" and (root / "tmp/victim").read_text() == "inside\n"


def snapshot(path: Path) -> tuple:
    st = path.lstat()
    content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
    return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), os.readlink(path) if path.is_symlink() else None, \
        content


@pytest.mark.parametrize("target", ["/dev/null", "../admin-tuning.conf"])
def test_symlinked_and_masked_persist_files_survive_apply_and_rollback(tmp_path, target):
    root = tmp_path / "root"
    persist = root / "etc/sysctl.d/90-guestcheck.conf"
    persist.parent.mkdir(parents=True)
    admin = root / "etc/admin-tuning.conf"
    admin.write_text("net.ipv4.tcp_fin_timeout = 30\n")
    os.chmod(admin, 0o640)
    os.symlink(target, persist)
    with netns() as ns:
        before, link, linked = sysctls(ns), snapshot(persist), snapshot(admin)
        line = one_line_error(tune(ns, root, "apply", "many-connections"))
        assert ("is masked (a symlink to /dev/null): the admin does not want it" if target == "/dev/null"
                else "is a symlink (to '../admin-tuning.conf')") in line and line.endswith("nothing was changed")
        assert sysctls(ns) == before and not (root / "var").exists()
        out = tune(ns, root, "rollback")
        assert out.returncode == 0 and "nothing to roll back" in out.stdout
        assert snapshot(persist) == link and snapshot(admin) == linked and sysctls(ns) == before


def test_a_persist_file_with_foreign_bytes_and_mode_comes_back_exactly(tmp_path):
    root = tmp_path / "root"
    persist = root / "etc/sysctl.d/90-guestcheck.conf"
    persist.parent.mkdir(parents=True)
    persist.write_bytes(b"# r\xe9glages\nnet.ipv4.tcp_sack = 1\n")
    os.chmod(persist, 0o600)
    with netns() as ns:
        before, original = sysctls(ns), snapshot(persist)
        assert tune(ns, root, "apply", "many-connections").returncode == 0
        assert b"net.ipv4.tcp_fin_timeout = 15" in persist.read_bytes()
        persist.write_bytes(persist.read_bytes() + b"\xff\n")  # edited since, and not UTF-8 either
        assert tune(ns, root, "verify").returncode == 1
        out = tune(ns, root, "rollback")
        assert out.returncode == 0 and f"restore {persist} (it held bytes that are not UTF-8)" in out.stdout
        assert sysctls(ns) == before and snapshot(persist) == original


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_a_lock_file_that_is_a_fifo_or_a_link_is_refused_at_once(tmp_path, kind):
    root, victim = scene(tmp_path)
    lock = root / "var/lib/guestcheck/tune.lock"
    lock.parent.mkdir(parents=True)
    os.mkfifo(lock) if kind == "fifo" else os.symlink(victim, lock)
    with netns() as ns:
        before = sysctls(ns)
        try:
            out = ns.run(["timeout", "20", *tune_argv(root, "apply", "many-connections")], check=False, timeout=30,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        except subprocess.TimeoutExpired:
            pytest.fail("apply hung on the lock file")
        assert "is not a regular file" in one_line_error(out)
        assert sysctls(ns) == before
    assert victim.read_text() == "original\n"


def tune_argv(root: Path, *args: str) -> list:
    import sys

    return [sys.executable, "-m", "guestcheck", "tune", "--root", str(root), *args]
