"""Distribution-aware commands, and os-release read through the distro library."""

from __future__ import annotations

import pytest

from guestcheck.checks import softirq
from guestcheck.collect.osrelease import os_info
from guestcheck.distros import enable_service_command, family, install_command
from guestcheck.facts import Facts, Host, Nic, NicIrq, NicSteering, Softirq, SoftnetCpu
from guestcheck.roots import Roots
from tests.judged import with_recorded


@pytest.mark.parametrize("os_id,like,expected", [
    ("debian", [], "debian"), ("ubuntu", ["debian"], "debian"), ("rocky", ["rhel", "centos", "fedora"], "fedora"),
    ("amzn", ["centos", "rhel", "fedora"], "fedora"), ("opensuse-leap", ["suse", "opensuse"], "suse"),
    ("alpine", [], "alpine"), ("somethingnew", ["ubuntu"], "debian"), ("", [], "debian"),
])
def test_family(os_id, like, expected):
    assert family(os_id, like) == expected


def test_commands():
    assert install_command("ethtool", "fedora") == "dnf install -y ethtool"
    assert install_command("ethtool", "sles") == "zypper install -y ethtool"
    assert install_command("iperf3", "alpine") == "apk add iperf3"
    assert install_command("iperf3") == "apt-get install -y iperf3"
    assert enable_service_command("irqbalance", "alpine") == "rc-update add irqbalance && rc-service irqbalance start"
    assert enable_service_command("irqbalance", "rhel") == "systemctl enable --now irqbalance"


@pytest.mark.parametrize("text,pretty,os_id,like", [
    # single quotes, as the shell (and so os-release(5)) reads them: the old parser kept the quotes
    ("PRETTY_NAME='Rocky Linux 9.3 (Blue Onyx)'\nID='rocky'\nID_LIKE='rhel centos fedora'\nVERSION_ID='9.3'\n",
     "Rocky Linux 9.3 (Blue Onyx)", "rocky", ["rhel", "centos", "fedora"]),
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
     "Debian GNU/Linux 12 (bookworm)", "debian", []),
    ('# comment\nPRETTY_NAME="say \\"hi\\""\nID=odd\n', 'say "hi"', "odd", []),
])
def test_os_release_through_distro(tmp_path, text, pretty, os_id, like):
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text(text)  # /etc has none: the fallback is read
    info = os_info(Roots.under(str(tmp_path)))
    assert (info.pretty_name, info.id, info.like) == (pretty, os_id, like)


def test_no_os_release_is_empty(tmp_path):
    info = os_info(Roots.under(str(tmp_path)))
    assert (info.pretty_name, info.id, info.like) == ("", "", [])


@pytest.mark.parametrize("os_id,like,fix", [
    ("debian", [], ["apt-get install -y irqbalance", "systemctl enable --now irqbalance"]),
    ("rocky", ["rhel", "centos", "fedora"], ["dnf install -y irqbalance", "systemctl enable --now irqbalance"]),
    ("alpine", [], ["apk add irqbalance", "rc-update add irqbalance && rc-service irqbalance start"]),
])
def test_irqbalance_fix_follows_the_distribution(os_id, like, fix):
    facts = Facts(host=Host(vcpus=2, os_id=os_id, os_like=like))
    facts.nics = [Nic("eth0", kind="paravirtual", driver="virtio_net", operstate="up")]
    steering = NicSteering("eth0", rx_queues=1, tx_queues=1, rps_cpus={"rx-0": "3"},
                           irqs=[NicIrq("11", "ens3", affinity="0-1", effective="0")])
    facts.softirq = Softirq(cpus=[SoftnetCpu(0)], nics=[steering], irqbalance=False, netdev_budget=300,
                            netdev_budget_usecs=2000, netdev_max_backlog=1000)
    (finding,) = [f for f in softirq.run(*with_recorded(facts)) if f.id == "IRQBALANCE-MISSING"]
    assert finding.fix.splitlines() == fix


def test_doctor_module_imports_no_distro_or_pyudev():
    import subprocess
    import sys

    from tests.fakemachine import REPO

    code = ("import sys; import guestcheck.entry, guestcheck.collect.machine, guestcheck.render.json; "
            "print(sorted(m for m in ('distro', 'pyudev') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), check=True)
    assert out.stdout.strip() == "[]"


def test_doctor_runs_without_the_distro_library_and_says_so(tmp_path, monkeypatch):
    """The OS name only words some fixes: a missing python3-distro is a note, not a failed doctor run."""
    import sys

    from guestcheck.doctor import build_report
    from tests.fakemachine import FakeMachine

    monkeypatch.setitem(sys.modules, "distro", None)  # `import distro` raises ImportError
    m = FakeMachine(tmp_path)
    m.write("etc/os-release", 'ID=debian\nVERSION_ID="12"\n')
    facts = m.collect()
    assert (facts.host.os, facts.host.os_id) == ("", "")
    assert any("'distro' is missing (install python3-distro)" in str(p) for p in facts.problems)
    assert build_report(facts).status.label in ("ok", "warning", "critical", "unknown")


def test_a_source_denied_even_to_root_does_not_ask_for_root():
    from guestcheck.collect.virt import problems
    from guestcheck.facts import Evidence

    rows = [Evidence("environ", "/proc/1/environ", "", error="permission denied")]
    assert str(problems(rows, is_root=True)[0]).endswith("; denied even to root)")
    assert str(problems(rows, is_root=False)[0]).endswith("; run as root)")
