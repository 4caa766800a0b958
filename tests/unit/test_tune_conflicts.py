"""Boot order of sysctl.d files, as systemd-sysctl applies them."""

from __future__ import annotations

import os

from guestcheck.roots import Roots
from guestcheck.tune.conflicts import boot_files, describe, find_conflicts, parse_sysctl_d


def _write(base, rel, text):
    path = base / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_files_sorted_by_name_across_directories_etc_hides_same_name(tmp_path):
    roots = Roots.under(str(tmp_path))
    _write(tmp_path, "usr/lib/sysctl.d/50-pid-max.conf", "kernel.pid_max = 4194304\n")
    _write(tmp_path, "usr/lib/sysctl.d/10-vendor.conf", "a = 1\n")
    _write(tmp_path, "run/sysctl.d/10-vendor.conf", "a = 2\n")
    _write(tmp_path, "etc/sysctl.d/10-vendor.conf", "a = 3\n")
    _write(tmp_path, "run/sysctl.d/20-run.conf", "a = 4\n")
    _write(tmp_path, "usr/local/lib/sysctl.d/30-local.conf", "a = 5\n")
    _write(tmp_path, "lib/sysctl.d/40-lib.conf", "a = 6\n")
    _write(tmp_path, "etc/sysctl.d/README.sysctl", "not a conf\n")
    assert boot_files(roots) == [
        ("10-vendor.conf", f"{tmp_path}/etc/sysctl.d/10-vendor.conf"),
        ("20-run.conf", f"{tmp_path}/run/sysctl.d/20-run.conf"),
        ("30-local.conf", f"{tmp_path}/usr/local/lib/sysctl.d/30-local.conf"),
        ("40-lib.conf", f"{tmp_path}/lib/sysctl.d/40-lib.conf"),
        ("50-pid-max.conf", f"{tmp_path}/usr/lib/sysctl.d/50-pid-max.conf"),
    ]


def test_run_hides_usr_lib_and_dev_null_masks(tmp_path):
    roots = Roots.under(str(tmp_path))
    _write(tmp_path, "usr/lib/sysctl.d/10-x.conf", "a = 1\n")
    _write(tmp_path, "run/sysctl.d/10-x.conf", "a = 2\n")
    _write(tmp_path, "usr/lib/sysctl.d/20-masked.conf", "a = 3\n")
    (tmp_path / "etc/sysctl.d").mkdir(parents=True)
    os.symlink("/dev/null", tmp_path / "etc/sysctl.d/20-masked.conf")
    assert boot_files(roots) == [("10-x.conf", f"{tmp_path}/run/sysctl.d/10-x.conf")]


def test_merged_usr_lib_is_read_once(tmp_path):
    _write(tmp_path, "usr/lib/sysctl.d/50-x.conf", "a = 1\n")
    os.symlink("usr/lib", tmp_path / "lib")
    assert [n for n, _ in boot_files(Roots.under(str(tmp_path)))] == ["50-x.conf"]


def test_sysctl_conf_counts_as_99_sysctl_conf(tmp_path):
    roots = Roots.under(str(tmp_path))
    _write(tmp_path, "etc/sysctl.conf", "net.ipv4.tcp_rmem = 4096 87380 6291456\n")
    assert boot_files(roots) == [("99-sysctl.conf", f"{tmp_path}/etc/sysctl.conf")]
    os.symlink("../sysctl.conf", _write(tmp_path, "etc/sysctl.d/.keep", "").parent / "99-sysctl.conf")
    assert boot_files(roots) == [("99-sysctl.conf", f"{tmp_path}/etc/sysctl.d/99-sysctl.conf")]  # Debian's link


def test_parse_sysctl_d_like_systemd():
    text = "# c\n; c\n\nnet/ipv4/tcp_sack=0\n-net.ipv4.tcp_ecn = 2\nbroken line\n  a.b =  1   2  \n"
    assert parse_sysctl_d(text) == [("net.ipv4.tcp_sack", "0", 4), ("net.ipv4.tcp_ecn", "2", 5), ("a.b", "1 2", 7)]


def test_a_later_file_wins_over_ours_and_an_earlier_one_loses(tmp_path):
    roots = Roots.under(str(tmp_path))
    _write(tmp_path, "usr/lib/sysctl.d/50-vendor.conf", "net.ipv4.tcp_rmem = 4096 87380 6291456\n")
    _write(tmp_path, "etc/sysctl.conf", "# admin\nnet.core.rmem_max = 8388608\nnet.core.rmem_max = 4194304\n")
    _write(tmp_path, "etc/sysctl.d/95-same.conf", "net.ipv4.tcp_wmem = 4096 65536 16777216\n")
    _write(tmp_path, "etc/sysctl.d/10-glob.conf", "net.core.* = 1\n")
    ours = {"net.ipv4.tcp_rmem": "4096 131072 16777216", "net.core.rmem_max": "16777216",
            "net.ipv4.tcp_wmem": "4096 65536 16777216", "net.ipv4.tcp_sack": "1"}
    found = {c.key: c for c in find_conflicts(ours, roots)}
    assert set(found) == {"net.ipv4.tcp_rmem", "net.core.rmem_max", "net.ipv4.tcp_wmem"}  # globs never beat ours
    assert found["net.ipv4.tcp_rmem"].we_win
    rmem_max = found["net.core.rmem_max"]
    assert not rmem_max.we_win and rmem_max.winner.where == f"{tmp_path}/etc/sysctl.conf:3"  # last line wins
    assert describe(rmem_max)[-1] == (f"net.core.rmem_max: at boot {tmp_path}/etc/sysctl.conf:3 wins with "
                                      "4194304: the profile's 16777216 is LOST after a reboot")
    assert "harmless, same value" in describe(found["net.ipv4.tcp_wmem"])[-1]
    assert "90-guestcheck.conf wins" in describe(found["net.ipv4.tcp_rmem"])[-1]


def test_our_own_file_is_not_a_conflict(tmp_path):
    _write(tmp_path, "etc/sysctl.d/90-guestcheck.conf", "net.ipv4.tcp_sack = 1\n")
    assert find_conflicts({"net.ipv4.tcp_sack": "1"}, Roots.under(str(tmp_path))) == []
