"""Distribution-aware commands, and os-release read through the distro library."""

from __future__ import annotations

import os

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


# os-release files as distributions ship them, and some that only a shell reads right; each is read by
# guestcheck (os-release alone where its fields decide) and by the distro library, and must agree byte for byte
OS_RELEASES = {
    "debian-12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
                 'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
    "debian-sid": 'PRETTY_NAME="Debian GNU/Linux trixie/sid"\nNAME="Debian GNU/Linux"\nVERSION_CODENAME=trixie\n'
                  'ID=debian\n',
    "ubuntu-22.04": 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
                    'VERSION="22.04.4 LTS (Jammy Jellyfish)"\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=jammy\n',
    "rocky-9": 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
               'VERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n',
    "oracle-9": 'NAME="Oracle Linux Server"\nVERSION="9.3"\nID="ol"\nID_LIKE="fedora"\nVERSION_ID="9.3"\n'
                'PRETTY_NAME="Oracle Linux Server 9.3"\n',
    "opensuse-leap": 'NAME="openSUSE Leap"\nVERSION="15.5"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
                     'VERSION_ID="15.5"\nPRETTY_NAME="openSUSE Leap 15.5"\n',
    "amzn-2023": 'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n'
                 'PRETTY_NAME="Amazon Linux 2023"\n',
    "alpine": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n',
    "arch": 'NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n',
    "no-pretty-name": 'NAME="Odd"\nID=odd\nVERSION_ID=1\nVERSION="1 (first)"\n',
    "crlf-comments-escapes": '# a comment\r\nPRETTY_NAME="say \\"hi\\" \\\\ there" # trailing\r\nID="Odd Linux"\r\n'
                             "VERSION_ID='1.2'\r\nID_LIKE=\"a  b\tc\"\r\nVERSION_ID=2.0\r\n",
    "continuation": 'PRETTY_NAME="one \\\ntwo"\nID=x\\\ny\nVERSION_ID=3\n',
    "unclosed-quote": 'PRETTY_NAME="never closed\nID=debian\nVERSION_ID=12\n',
    "empty-values": 'PRETTY_NAME=""\nID=debian\nVERSION_ID=\n',
    "words-not-assignments": 'export PRETTY_NAME="A B"\nID=a VERSION_ID=9 junk\n',
    "not-utf8": b'PRETTY_NAME="caf\xe9"\nID=debian\nVERSION_ID=12\n',
    "empty": "",
}


def _distro_says(root: str, path: str) -> tuple:
    import distro

    try:
        d = distro.LinuxDistribution(os_release_file=path, root_dir=root)
        return (d.os_release_attr("pretty_name") or d.name(pretty=True), d.id(), d.like().split(), d.version())
    except (OSError, UnicodeError, ValueError):
        return ("", "", [], "")


@pytest.mark.parametrize("name", sorted(OS_RELEASES))
def test_os_release_reads_as_distro_does(tmp_path, name):
    pytest.importorskip("distro")
    text = OS_RELEASES[name]
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/debian_version").write_text("trixie/sid\n")  # distro's fallback for Debian's version
    (tmp_path / "etc/os-release").write_bytes(text if isinstance(text, bytes) else text.encode())
    info = os_info(Roots.under(str(tmp_path)))
    assert (info.pretty_name, info.id, info.like, info.version) == _distro_says(str(tmp_path),
                                                                               str(tmp_path / "etc/os-release"))


def test_this_machines_os_release_reads_as_distro_does():
    pytest.importorskip("distro")
    info = os_info(Roots())
    chosen = "/etc/os-release" if os.path.isfile("/etc/os-release") else "/usr/lib/os-release"
    assert (info.pretty_name, info.id, info.like, info.version) == _distro_says("/", chosen)


def test_the_id_normalisation_is_distros():
    distro = pytest.importorskip("distro")
    from guestcheck.collect.osrelease import NORMALIZED_OS_ID

    assert NORMALIZED_OS_ID == distro.distro.NORMALIZED_OS_ID


def test_a_file_os_release_decides_reads_without_distro(tmp_path, monkeypatch):
    """The usual file (ID, VERSION_ID, PRETTY_NAME) needs no distro import: doctor's start-up."""
    import sys

    monkeypatch.setitem(sys.modules, "distro", None)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text(OS_RELEASES["rocky-9"])
    info = os_info(Roots.under(str(tmp_path)))
    assert (info.pretty_name, info.id, info.like, info.version, info.problem) == (
        "Rocky Linux 9.3 (Blue Onyx)", "rocky", ["rhel", "centos", "fedora"], "9.3", "")
