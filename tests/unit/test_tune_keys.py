"""guestcheck/tune/keys.py: every sysctl key is judged after the "/" -> "." translation and stays in /proc/sys."""

from __future__ import annotations

import os

import pytest

from guestcheck.names import valid_ifname
from guestcheck.tune.keys import BadKey, UnknownInterface, check_syntax, resolve


@pytest.mark.parametrize("key", [
    "net.//.vm.swappiness", "net.//.//.//.tmp.victim", "net.ipv4.conf.//.//.//.//.tmp.victim", "net./.x",
    "net..ipv4", ".net.ipv4", "net.ipv4.", "", "net.ipv4.tcp rmem", "net.ipv4.tcp_rmem\n", "net.ipv4.t*",
    "net.ipv4.tcp=1", "net.core.so$maxconn", "net.ipv4.conf.eth0:1/x.rp_filter", "x" * 600, "net.ipv4.é",
    "net.ipv4.conf.a/b/c/d/e/f/g/h/i.rp_filter",  # 15 characters is the interface name limit
])
def test_keys_that_are_not_sysctl_names_are_refused(key):
    with pytest.raises(BadKey):
        check_syntax(key)


@pytest.mark.parametrize("key", [None, 3, ["net"], b"net.core.somaxconn"])
def test_keys_of_the_wrong_type_are_refused(key):
    with pytest.raises(BadKey):
        check_syntax(key)


@pytest.mark.parametrize("key,parts", [
    ("net.ipv4.tcp_rmem", ["net", "ipv4", "tcp_rmem"]),
    ("net.ipv4.conf.eth0/100.rp_filter", ["net", "ipv4", "conf", "eth0.100", "rp_filter"]),
    ("net.ipv6.neigh.wg-0.base_reachable_time_ms", ["net", "ipv6", "neigh", "wg-0", "base_reachable_time_ms"]),
    ("fs.binfmt_misc.a+b@c:d", ["fs", "binfmt_misc", "a+b@c:d"]),
])
def test_kernel_keys_pass(key, parts):
    assert check_syntax(key) == parts


def test_only_the_interface_position_may_hold_other_characters():
    assert check_syntax("net.ipv4.conf.eth0/5.rp_filter")
    with pytest.raises(BadKey):
        check_syntax("net.ipv4.eth0/5.rp_filter")


def test_interface_names_follow_the_kernel():
    assert valid_ifname("eth0.100") and valid_ifname("a" * 15)
    for bad in ("", ".", "..", "a/b", "a:b", "a b", "a" * 16, "a\n", None):
        assert not valid_ifname(bad)


def fake_machine(tmp_path):
    proc_sys = tmp_path / "proc/sys"
    (proc_sys / "net/ipv4/conf/eth0.100").mkdir(parents=True)
    (proc_sys / "net/ipv4/conf/eth0.100/rp_filter").write_text("1\n")
    class_net = tmp_path / "sys/class/net"
    (class_net / "eth0.100").mkdir(parents=True)
    return str(proc_sys), str(class_net)


def test_resolve_names_the_file_under_proc_sys(tmp_path):
    proc_sys, class_net = fake_machine(tmp_path)
    assert resolve("net.ipv4.conf.eth0/100.rp_filter", proc_sys, class_net) == \
        os.path.join(proc_sys, "net/ipv4/conf/eth0.100/rp_filter")
    assert resolve("net.ipv4.tcp_rmem", proc_sys, class_net) == os.path.join(proc_sys, "net/ipv4/tcp_rmem")


def test_an_unusual_interface_name_must_exist(tmp_path):
    proc_sys, class_net = fake_machine(tmp_path)
    with pytest.raises(UnknownInterface):
        resolve("net.ipv4.conf.eth0/200.rp_filter", proc_sys, class_net)
    assert resolve("net.ipv4.conf.eth9.rp_filter", proc_sys, class_net)  # the plain alphabet: no look-up


def test_a_symlink_out_of_proc_sys_is_refused(tmp_path):
    proc_sys, class_net = fake_machine(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", os.path.join(proc_sys, "net/escape"))
    with pytest.raises(BadKey, match="resolves outside"):
        resolve("net.escape.victim", proc_sys, class_net)


def test_messages_are_one_line():
    with pytest.raises(BadKey) as e:
        check_syntax("net.\n.x")
    assert "\n" not in str(e.value)
