"""The tuner's journal on a real kernel (issue 18, items 2 and 6): always rolled back, NICs found by identity.

Everything runs in network namespaces made here, with `tune --root TMP` for the files: the machine's own
interfaces, sysctls and files are never touched.
- Journals written by 1ab7483 (tests/data/journal-1ab7483-*.json: surrogate-escaped contents, no NIC identity)
  still verify and roll back, byte for byte.
- A 1 MB non-UTF-8 .link file and a 90-guestcheck.conf with a 700 KB Latin-1 comment are applied and rolled
  back byte for byte; a journal that would be larger than rollback reads is refused up front (exit 3).
- A tuned veth renamed, and a new one made with its old name: rollback restores the renamed one and leaves the
  new one alone; with the tuned one gone, rollback refuses (naming both) and writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.live.test_tune_live import tune
from tests.netns import Netns, netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")]
DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT_LINK = ("[Match]\nOriginalName=*\n\n[Link]\nNamePolicy=keep kernel database onboard slot path\n"
                "AlternativeNamesPolicy=database onboard slot path\nMACAddressPolicy=persistent\n")
SYSCTLS = ("net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_fin_timeout", "net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog",
           "net.ipv4.ip_local_port_range")



def features(ns: Netns, dev: str) -> dict:
    out = ns.run(["ethtool", "-k", dev]).stdout
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines()[1:])}


def channels(ns: Netns, dev: str) -> str:
    return ns.run(["ethtool", "-l", dev]).stdout.split("Current hardware settings:")[1]


def sysctls(ns: Netns) -> dict:
    return {k: " ".join(ns.run(["sysctl", "-n", k]).stdout.split()) for k in SYSCTLS}


def files(root: Path) -> dict:
    """Every file under the root (but the lock), its bytes and mode: what "nothing changed" compares."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "tune.lock":
            out[str(path.relative_to(root))] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return out


def link_root(tmp_path: Path) -> Path:
    lib = tmp_path / "usr/lib/systemd/network"
    lib.mkdir(parents=True)
    (lib / "99-default.link").write_text(DEFAULT_LINK)
    (tmp_path / "etc/systemd/network").mkdir(parents=True)
    (tmp_path / "etc/udev/rules.d").mkdir(parents=True)
    return tmp_path


def put(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


# --- journals written by 1ab7483 ---------------------------------------------------------------------------

def test_a_1ab7483_profile_journal_verifies_and_rolls_back_byte_for_byte(tmp_path):
    journal = json.loads((DATA / "journal-1ab7483-apply.json").read_text())
    put(tmp_path / "etc/sysctl.d/90-guestcheck.conf",
        (DATA / "journal-1ab7483-apply.applied-90-guestcheck.conf").read_bytes())
    put(tmp_path / "var/lib/guestcheck/tune-state.json", (DATA / "journal-1ab7483-apply.json").read_bytes(), 0o600)
    with netns() as ns:
        before = sysctls(ns)
        assert before == {k: b["original"] for k, b in journal["sysctl"].items() if k in SYSCTLS}
        for key, backup in journal["sysctl"].items():
            ns.run(["sysctl", "-w", f"{key}={backup['applied']}"])
        verify = tune(ns, tmp_path, "verify")
        print(verify.stdout)
        assert "many-connections: verified" in verify.stdout, verify.stdout + verify.stderr
        out = tune(ns, tmp_path, "rollback")
        assert out.returncode == 0, out.stderr
        assert sysctls(ns) == before
    persist = tmp_path / "etc/sysctl.d/90-guestcheck.conf"
    assert persist.read_bytes() == (DATA / "journal-1ab7483-apply.orig-90-guestcheck.conf").read_bytes()
    assert persist.stat().st_mode & 0o777 == 0o640
    assert not (tmp_path / "var/lib/guestcheck/tune-state.json").exists()


def test_a_1ab7483_nic_journal_verifies_and_rolls_back_byte_for_byte(tmp_path):
    """The journal is used as saved: its boot id is another boot's, and what it persisted is live again
    (as udev would have applied it at boot), so rollback restores it, finding gc0 by name (no identity)."""
    root = link_root(tmp_path)
    put(root / "etc/systemd/network/50-guestcheck-gc0.link",
        (DATA / "journal-1ab7483-nic.applied-50-guestcheck-gc0.link").read_bytes())
    put(root / "etc/udev/rules.d/90-guestcheck-gc0.rules",
        (DATA / "journal-1ab7483-nic.applied-90-guestcheck-gc0.rules").read_bytes())
    put(root / "var/lib/guestcheck/tune-state.json", (DATA / "journal-1ab7483-nic.json").read_bytes(), 0o600)
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "sg", "off", "tso", "off", "gso", "off"])
        off, one = features(a, "gc0"), channels(a, "gc0")
        a.run(["ethtool", "-K", "gc0", "sg", "on", "tso", "on", "gso", "on"])  # what the journal applied
        a.run(["ethtool", "-L", "gc0", "rx", "2", "tx", "2"])
        verify = tune(a, root, "verify")
        print(verify.stdout)
        assert verify.returncode == 0 and verify.stdout.rstrip().endswith(": verified"), verify.stdout + verify.stderr
        out = tune(a, root, "rollback")
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        assert features(a, "gc0") == off and channels(a, "gc0") == one
    for kind, name, mode in (("link", "etc/systemd/network/50-guestcheck-gc0.link", 0o600),
                             ("rules", "etc/udev/rules.d/90-guestcheck-gc0.rules", 0o644)):
        orig = DATA / f"journal-1ab7483-nic.orig-{Path(name).name}"
        assert (root / name).read_bytes() == orig.read_bytes(), kind
        assert (root / name).stat().st_mode & 0o777 == mode
    assert not (root / "var/lib/guestcheck/tune-state.json").exists()


# --- large and non-UTF-8 files: applied and rolled back, or refused up front ------------------------------

def test_a_1mb_non_utf8_link_file_is_applied_and_rolled_back_byte_for_byte(tmp_path):
    root = link_root(tmp_path)
    big = b"# " + bytes(range(128, 256)) * 7813 + b"\n[Match]\nOriginalName=nomatch0\n"  # 1 MB, not UTF-8
    assert 1_000_000 <= len(big) <= 1024 * 1024
    ours = root / "etc/systemd/network/50-guestcheck-gc0.link"
    put(ours, big, 0o640)
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "tso", "off", "gso", "off"])
        off = features(a, "gc0")
        out = tune(a, root, "offloads", "gc0")
        assert out.returncode == 0, out.stderr
        assert features(a, "gc0")["tcp-segmentation-offload"] == "on"
        journal = root / "var/lib/guestcheck/tune-state.json"
        assert journal.stat().st_size < 4 * 1024 * 1024 * 0.4  # base64: 4/3 of the file, not 6x
        assert tune(a, root, "verify").returncode == 0
        out = tune(a, root, "rollback")
        assert out.returncode == 0, out.stderr
        assert features(a, "gc0") == off
    assert ours.read_bytes() == big and ours.stat().st_mode & 0o777 == 0o640


def test_a_persist_file_with_a_700kb_latin1_comment_is_applied_and_rolled_back_byte_for_byte(tmp_path):
    text = ("# " + "réglage été à côté " * 36843 + "\nnet.ipv4.tcp_fin_timeout = 30\n").encode("latin-1")
    assert len(text) > 700_000
    persist = tmp_path / "etc/sysctl.d/90-guestcheck.conf"
    put(persist, text, 0o600)
    with netns() as ns:
        before = sysctls(ns)
        out = tune(ns, tmp_path, "apply", "many-connections")
        assert out.returncode == 0, out.stderr
        assert sysctls(ns) != before and b"net.ipv4.tcp_fin_timeout = 15" in persist.read_bytes()
        out = tune(ns, tmp_path, "rollback")
        assert out.returncode == 0, out.stderr
        assert sysctls(ns) == before
    assert persist.read_bytes() == text and persist.stat().st_mode & 0o777 == 0o600


def test_a_journal_larger_than_rollback_reads_is_refused_before_anything_changes(tmp_path):
    """1 MiB of non-UTF-8 bytes at each of the persist, .link and rule paths: 4 MiB of base64 with the rest,
    over what rollback reads. `apply` keeps the first; `tune offloads` would add the other two: refused."""
    root = link_root(tmp_path)
    mib = bytes(range(128, 256)) * 8192
    put(root / "etc/sysctl.d/90-guestcheck.conf", mib)
    put(root / "etc/systemd/network/50-guestcheck-gc0.link", mib)
    put(root / "etc/udev/rules.d/90-guestcheck-gc0.rules", mib)
    with netns() as a, netns() as b, veth_pair(a, b):
        out = tune(a, root, "apply", "many-connections")
        assert out.returncode == 0, out.stderr
        a.run(["ethtool", "-K", "gc0", "tso", "off", "gso", "off"])
        live, before = features(a, "gc0"), files(root)
        out = tune(a, root, "offloads", "gc0")
        print(out.stderr)
        assert out.returncode == 3 and len(out.stderr.strip().splitlines()) == 1
        assert "that `rollback` reads" in out.stderr and "nothing was changed" in out.stderr
        assert features(a, "gc0") == live and files(root) == before
        out = tune(a, root, "rollback")
        assert out.returncode == 0, out.stderr
    assert (root / "etc/sysctl.d/90-guestcheck.conf").read_bytes() == mib


# --- NICs found by identity ---------------------------------------------------------------------------------

def new_veth(ns: Netns, name: str, peer_ns: Netns, peer: str) -> None:
    ns.ip("link", "add", name, "type", "veth", "peer", "name", peer, "netns", peer_ns.name)
    ns.ip("link", "set", name, "up")


def test_a_renamed_nic_is_rolled_back_under_its_new_name_and_the_new_one_with_its_name_is_untouched(tmp_path):
    root = link_root(tmp_path)
    with netns() as a, netns() as b:
        new_veth(a, "na", b, "pa")
        a.run(["ethtool", "-K", "na", "tso", "off", "gso", "off"])
        tuned_off = features(a, "na")
        out = tune(a, root, "offloads", "na")
        assert out.returncode == 0, out.stderr
        assert features(a, "na")["tcp-segmentation-offload"] == "on"
        journal = json.loads((root / "var/lib/guestcheck/tune-state.json").read_text())
        ident = journal["nics"]["na"]
        assert ident["perm_mac"] is None and ident["ifindex"] > 0 and ident["boot_id"]  # a veth: no permanent one
        a.ip("link", "set", "na", "down")
        a.ip("link", "set", "na", "name", "nz")
        new_veth(a, "na", b, "pb")  # a new device takes the old name; its offloads are on (veth defaults)
        a.run(["ethtool", "-K", "na", "gro", "on"])
        new_before = features(a, "na")
        assert new_before != tuned_off
        verify = tune(a, root, "verify")
        print(verify.stdout)
        assert "nz is the device tuned as na (renamed since)" in verify.stdout and verify.returncode == 0
        out = tune(a, root, "rollback")
        print(out.stdout)
        assert out.returncode == 0, out.stderr
        assert "nz: restore offloads (tuned as na)" in out.stdout
        assert features(a, "nz") == tuned_off  # the tuned device, under its new name, is restored
        assert features(a, "na") == new_before  # the new device with the old name is untouched
    assert not (root / "etc/systemd/network/50-guestcheck-na.link").exists()
    assert not (root / "var/lib/guestcheck/tune-state.json").exists()


def test_a_different_device_with_the_tuned_name_is_refused_naming_both_and_nothing_is_written(tmp_path):
    root = link_root(tmp_path)
    with netns() as a, netns() as b:
        new_veth(a, "na", b, "pa")
        a.run(["ethtool", "-K", "na", "tso", "off", "gso", "off"])
        assert tune(a, root, "offloads", "na").returncode == 0
        tuned_mac = a.run(["cat", "/sys/class/net/na/address"]).stdout.strip()
        a.ip("link", "del", "na")  # the tuned device is gone...
        new_veth(a, "na", b, "pb")  # ...and another took its name
        a.run(["ethtool", "-K", "na", "tso", "off"])
        new_before, before = features(a, "na"), files(root)
        new_mac = a.run(["cat", "/sys/class/net/na/address"]).stdout.strip()
        verify = tune(a, root, "verify")
        assert verify.returncode == 1 and "na is now a different device" in verify.stdout
        again = tune(a, root, "offloads", "na")
        assert again.returncode == 3 and "another device that was called na" in again.stderr
        out = tune(a, root, "rollback")
        print(out.stderr)
        assert out.returncode == 3 and len(out.stderr.strip().splitlines()) == 1
        assert f"address {new_mac}" in out.stderr and f"address {tuned_mac}" in out.stderr  # both named
        assert "nothing was changed" in out.stderr
        assert features(a, "na") == new_before and files(root) == before
        out = tune(a, root, "rollback", "--leave", "na")
        assert out.returncode == 0, out.stderr
        assert features(a, "na") == new_before
    assert not (root / "etc/systemd/network/50-guestcheck-na.link").exists()
    assert not (root / "var/lib/guestcheck/tune-state.json").exists()

