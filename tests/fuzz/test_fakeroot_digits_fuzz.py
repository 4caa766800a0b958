"""Non-ASCII digits in every file of a fake machine: doctor and facts never give an internal error.

`str.isdigit()` is true for '²', and `int()` takes '٣' and fullwidth digits but raises on '²': a collector that
trusted either turned a netplan `mtu: ²` into "internal error" for doctor, refresh and facts. Every integer from
a file now goes through guestcheck.quantities (ASCII digits only). The property: with digits in any set of the
fake root's files replaced by, or run together with, non-ASCII digits, collecting, judging and rendering the
facts (JSON, human, Prometheus) raises nothing; and the commands, run as processes, exit as the README says.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guestcheck.collect.machine import collect_facts
from guestcheck.doctor import build_report
from guestcheck.render import render_report
from guestcheck.roots import Roots
from tests.fakemachine import FakeMachine, from_snapshot
from tests.fuzz.harness import assert_clean_exit, run_guestcheck

# superscript two (isdigit, not decimal), Arabic-Indic three and fullwidth one (decimal: int() takes them),
# N'Ko one, mathematical bold one, Devanagari five
DIGITS = ["\u00b2", "\u0663", "\uff11", "\u07c1", "\U0001d7cf", "\u096b"]
ASCII_NUMBER = re.compile(r"[0-9]+")

EXTRA_FILES = {  # sources beyond the capture's, each holding numbers a collector reads
    "etc/netplan/50-cloud-init.yaml": "network:\n  ethernets:\n    eth0:\n      mtu: 9001\n      set-name: eth0\n",
    "etc/network/interfaces.d/50-cloud-init": "auto eth0\niface eth0 inet dhcp\n    mtu 1460\n",
    "run/NetworkManager/devices/2": "[device]\nmanaged=true\n",
    "etc/tuned/active_profile": "throughput-performance\n",
    "etc/resolv.conf": "nameserver 10.0.2.3\n",
    "proc/net/vlan/config": "VLAN Dev name    | VLAN ID\nName-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\n"
                            "eth0.100       | 100  | eth0\n",
    "proc/stat": "cpu  100 0 50 1000 0 0 5 7 0 0\ncpu0 100 0 50 1000 0 0 5 7 0 0\n",
    "proc/softirqs": "                    CPU0\n          HI:          0\n      NET_RX:       1234\n",
    "proc/interrupts": "           CPU0\n 24:        100   PCI-MSI 49153-edge      virtio0-input.0\n"
                       " 25:         50   PCI-MSI 49154-edge      virtio0-output.0\nNMI:          0   Non-maskable\n",
    "proc/net/route": "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                      "eth0\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
    "proc/net/arp": "IP address       HW type     Flags       HW address            Mask     Device\n"
                    "10.0.2.2         0x1         0x2         52:55:0a:00:02:02     *        eth0\n",
    "proc/net/stat/nf_conntrack": "entries  searched found new invalid ignore delete delete_list insert "
                                  "insert_failed drop early_drop icmp_error  expect_new expect_create "
                                  "expect_delete search_restart\n"
                                  "00000010  00000000 00000000 00000000 00000002 00000000 00000000 00000000 "
                                  "00000000 00000001 00000000 00000000 00000000  00000000 00000000 00000000 "
                                  "00000000\n",
    "proc/sys/net/core/netdev_max_backlog": "1000\n",
    "proc/sys/net/core/netdev_budget": "300\n",
    "proc/sys/net/ipv4/tcp_rmem": "4096\t131072\t6291456\n",
    "sys/fs/cgroup/memory.max": "2147483648\n",
    "proc/user_beancounters": "Version: 2.5\n       uid  resource  held  maxheld  barrier  limit  failcnt\n"
                              "      101:  kmemsize  100  200  300  400  0\n",
}


def _template(base: Path) -> list[str]:
    """A fake machine with a virtio NIC (a capture where there is one), its ethtool answers written as replay
    files, plus EXTRA_FILES; the relative paths of its regular files."""
    try:
        m = from_snapshot("qemu-virtio", base)
    except pytest.skip.Exception:
        m = FakeMachine(base)
        m.add_nic("eth0", driver="virtio_net", bus="virtio", ifindex=2, speed=-1, queues=2)
    for rel, text in EXTRA_FILES.items():
        m.write(rel, text)
    m.write_ethtool()
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file() and not p.is_symlink())


_TEMPLATE_DIR = Path(tempfile.mkdtemp(prefix="guestcheck-digits-"))  # built once, copied for each example
atexit.register(shutil.rmtree, _TEMPLATE_DIR, True)
FILES = _template(_TEMPLATE_DIR / "root")


def _spoil(text: str, digit: str, how: str) -> str:
    if how == "replace":
        return ASCII_NUMBER.sub(lambda m: digit * len(m.group()), text)
    if how == "one":  # one digit of each number: '1²00'
        return ASCII_NUMBER.sub(lambda m: m.group()[:-1] + digit, text)
    return ASCII_NUMBER.sub(lambda m: m.group() + digit if how == "after" else digit + m.group(), text)


def _spoiled_root(tmp: str, digit: str, how: str, chosen: frozenset[int]) -> Path:
    base = Path(tmp, "root")
    shutil.copytree(_TEMPLATE_DIR / "root", base, symlinks=True)
    for i in chosen:
        path = base / FILES[i]
        path.write_text(_spoil(path.read_text(encoding="utf-8", errors="surrogateescape"), digit, how),
                        encoding="utf-8", errors="surrogateescape")
    return base


HOW = ["replace", "one", "after", "before"]


@settings(max_examples=max(20, settings.default.max_examples))
@given(digit=st.sampled_from(DIGITS), how=st.sampled_from(HOW),
       chosen=st.one_of(st.just(frozenset(range(len(FILES)))),
                        st.frozensets(st.integers(0, len(FILES) - 1), min_size=1)))
def test_non_ascii_digits_in_any_fake_root_file_never_raise(digit, how, chosen):
    with tempfile.TemporaryDirectory() as tmp:
        base = _spoiled_root(tmp, digit, how, chosen)
        facts = collect_facts(Roots.under(str(base)), cpuid_reader=lambda: None, sample_seconds=0)
        report = build_report(facts)
        for fmt in ("json", "human", "prometheus"):
            assert render_report(report, fmt)


@pytest.mark.parametrize("digit", DIGITS[:3])
def test_doctor_facts_and_refresh_with_every_number_spoiled(digit):
    """As users run them: every ASCII digit of every file is a non-ASCII one; exits from the README's table."""
    with tempfile.TemporaryDirectory() as tmp:
        for how in ("replace", "one"):
            base = _spoiled_root(f"{tmp}/{how}", digit, how, frozenset(range(len(FILES))))
            env = {"GUESTCHECK_ROOT": str(base)}
            for args in (["doctor", "--sample", "0"], ["facts", "--json", "--sample", "0"], ["refresh"]):
                assert_clean_exit(run_guestcheck(args, env=env, timeout=120), args[0])
