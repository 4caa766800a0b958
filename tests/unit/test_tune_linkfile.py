"""Which .link file udev applies to an interface, what ours carries over, and when a udev rule is needed."""

from __future__ import annotations

import pytest

from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune import linkfile as lf

DEFAULT = ("[Match]\nOriginalName=*\n\n[Link]\nNamePolicy=keep kernel database onboard slot path\n"
           "AlternativeNamesPolicy=database onboard slot path\nMACAddressPolicy=persistent\n")
USB = "[Match]\nPath=*-usb-*\n\n[Link]\nNamePolicy=mac\n"


def tree(tmp_path, files):
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return Roots.under(str(tmp_path))


def dev(**kw):
    return lf.Device(**{"name": "ens3", "mac": "52:54:00:12:34:56", "perm_mac": "52:54:00:12:34:56",
                        "driver": "virtio_net", "type": "ether", "original_name": None, **kw})


def test_the_file_that_applies_is_the_first_match_across_directories(tmp_path):
    roots = tree(tmp_path, {"usr/lib/systemd/network/99-default.link": DEFAULT,
                            "usr/lib/systemd/network/73-usb-net-by-mac.link": USB,
                            "etc/systemd/network/80-nope.link": "[Match]\nDriver=e1000\n[Link]\nName=x\n"})
    applying, notes = lf.applying_now(roots, dev())
    assert applying.name == "99-default.link" and applying.how == "matched"
    assert notes == [f"{tmp_path}/usr/lib/systemd/network/73-usb-net-by-mac.link may match ens3 "
                     "(it tests what guestcheck cannot see)"]  # Path= without udev's ID_PATH
    usb = dev(udev={"ID_PATH": "pci-0000:00:14.0-usb-0:1:1.0"})
    assert lf.applying_now(roots, usb)[0].name == "73-usb-net-by-mac.link"


def test_udev_database_names_the_file_and_etc_hides_lib(tmp_path):
    roots = tree(tmp_path, {"usr/lib/systemd/network/99-default.link": DEFAULT,
                            "etc/systemd/network/99-default.link": "[Match]\nOriginalName=*\n[Link]\nNamePolicy=mac\n",
                            "run/systemd/network/10-masked.link": ""})
    applying, _ = lf.applying_now(roots, dev(udev={"ID_NET_LINK_FILE": "/usr/lib/systemd/network/99-default.link"}))
    assert applying.path == f"{tmp_path}/etc/systemd/network/99-default.link" and applying.how == "udev"
    assert ("NamePolicy", "mac") in applying.link
    assert [n for n, _ in lf.boot_link_files(roots)] == ["99-default.link"]  # an empty file masks


def test_match_rules():
    d = dev(original_name="eth0")
    assert lf.matches([("OriginalName", "eth*")], d) is True
    assert lf.matches([("OriginalName", "!eth*")], d) is False
    assert lf.matches([("PermanentMACAddress", "52:54:00:12:34:56 aa:bb:cc:dd:ee:ff")], d) is True
    assert lf.matches([("MACAddress", "52:54:00:00:00:01")], d) is False
    assert lf.matches([("Driver", "virtio*"), ("Host", "x")], d) is None
    assert lf.matches([], d) is False  # an empty [Match]: systemd ignores the file
    assert lf.matches([("OriginalName", "*")], dev()) is True  # renamed: unknown kernel name, "*" still matches


def test_carried_lines_keep_the_name_and_drop_our_own_keys():
    applying = lf.Applying("99-default.link", "/x", [("NamePolicy", "keep kernel"), ("MACAddressPolicy", "persistent"),
                                                     ("RxBufferSize", "64"), ("Bad", "a\x1bb")], "udev")
    assert lf.carried_lines(applying, "ens3") == ["NamePolicy=keep kernel", "MACAddressPolicy=persistent"]
    assert lf.carried_lines(None, "ens3") == ["Name=ens3"]  # nothing applied: keep today's name explicitly


def test_match_lines_prefer_the_permanent_address():
    assert dev().match_lines() == ["PermanentMACAddress=52:54:00:12:34:56"]
    assert dev(perm_mac=None, original_name="veth0").match_lines() == ["OriginalName=veth0"]
    assert dev(perm_mac=None).match_lines() == ["MACAddress=52:54:00:12:34:56"]


def test_conflicts_are_files_sorting_before_ours_that_match(tmp_path):
    roots = tree(tmp_path, {"usr/lib/systemd/network/99-default.link": DEFAULT,
                            "etc/systemd/network/10-admin.link": "[Match]\nPermanentMACAddress=52:54:00:12:34:56\n"
                                                                 "[Link]\nName=lan0\n",
                            "run/systemd/network/20-maybe.link": "[Match]\nKind=veth\n[Link]\nMTUBytes=9000\n"})
    found = lf.conflicts(roots, dev(), "50-guestcheck-ens3.link")
    assert [(c.path.split("/")[-1], c.certain) for c in found] == [("10-admin.link", True), ("20-maybe.link", False)]
    assert "it wins at boot" in found[0].describe("50-guestcheck-ens3.link")


def test_names_and_paths_stay_under_the_root(tmp_path):
    assert lf.file_names("ens3") == ("50-guestcheck-ens3.link", "90-guestcheck-ens3.rules")
    with pytest.raises(TuneError, match="--no-persist"):
        lf.file_names("a*b")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root/etc/systemd").mkdir(parents=True)
    (tmp_path / "root/etc/systemd/network").symlink_to(outside)
    with pytest.raises(TuneError, match="resolves outside"):
        lf.safe_path(str(tmp_path / "root/etc/systemd/network"), "50-guestcheck-x.link", str(tmp_path / "root"))


def test_rule_text_runs_ethtool_per_kind():
    text = lf.rule_text("ens3", ["PermanentMACAddress=52:54:00:12:34:56"],
                        {"K:tx-scatter-gather": "on", "L:combined": "2", "G:rx": "4096"}, "why")
    assert text.splitlines()[-1] == (
        'ACTION=="add", SUBSYSTEM=="net", ATTR{address}=="52:54:00:12:34:56", '
        'RUN+="/usr/sbin/ethtool -K $name tx-scatter-gather on", RUN+="/usr/sbin/ethtool -L $name combined 2", '
        'RUN+="/usr/sbin/ethtool -G $name rx 4096"')


INJECTED = 'OriginalName=ra", RUN+="/bin/touch /tmp/x'


@pytest.mark.parametrize("line", [INJECTED, "OriginalName=ra*", "OriginalName=!ra", "OriginalName=a b",
                                  "OriginalName=%k", "OriginalName=$name", "MACAddress=52:54:00:12:34:5g",
                                  'MACAddress=52:54:00:12:34:56"', "Driver=virtio_net", "OriginalName=",
                                  "OriginalName=..", "Path=x"])
def test_match_lines_that_udev_or_systemd_would_read_otherwise_are_refused(line):
    """Issue 18 item 7: a [Match] value is a plain name or a hardware address, never a glob, a quote or a
    substitution: it means the same in the .link file and inside the rule's double quotes."""
    assert lf.match_problem(line)
    with pytest.raises(TuneError, match="refusing to write"):
        lf.rule_text("ra", [line], {"K:tx-scatter-gather": "on"}, "why")
    with pytest.raises(TuneError, match="refusing to write"):
        lf.link_text("ra", [line], [], {"TCPSegmentationOffload": "yes"}, None)


def test_match_lines_guestcheck_writes_are_accepted():
    for line in ("OriginalName=ra", "OriginalName=veth.1@x+y_z-", "MACAddress=52:54:00:12:34:56",
                 "PermanentMACAddress=52:54:00:AB:cd:56"):
        assert lf.match_problem(line) is None
        assert "RUN+=" in lf.rule_text("ra", [line], {"K:tx-scatter-gather": "on"}, "why")
