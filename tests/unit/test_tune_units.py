"""The NIC units (guestcheck/tune/units/): rings, the persisted .link file and rule, verify and rollback."""

from __future__ import annotations

import os

import pytest

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.facts import Channels, Feature, Rings
from guestcheck.tune import TuneError
from guestcheck.tune.engine import NIC_UNITS, UNITS, rollback, touched_nic_units, verify_journal
from guestcheck.tune.journal import load_state, state_from_text
from guestcheck.tune.profile import load
from guestcheck.tune.units.links import verify_links
from guestcheck.tune.units.rings import RingsUnit, ring_target
from tests.fakemachine import FakeEthtool, FakeMachine
from tests.tune_fake import (
    PROFILES,
    FakeKernel,
    apply_offloads,
    apply_profile,
    apply_queues,
    apply_rings,
    fake_ethtool_writer,
)

Writer = fake_ethtool_writer(FakeEthtool)
DEFAULT = ("[Match]\nOriginalName=*\n\n[Link]\nNamePolicy=keep kernel database onboard slot path\n"
           "AlternativeNamesPolicy=database onboard slot path\nMACAddressPolicy=persistent\n")
SG_OFF = {"tx-scatter-gather": Feature(False, False), "tx-tcp-segmentation": Feature(False, False),
          "tx-generic-segmentation": Feature(False, False), "tx-checksum-ip-generic": Feature(True, False),
          "rx-gro": Feature(True, False), "rx-checksum": Feature(True, False)}


def machine(tmp_path, **kw):
    m = FakeMachine(tmp_path)
    m.add_nic("ens3", driver="e1000", bus="pci", **kw)
    et = Writer(m.ethtool.drvinfos, m.ethtool.feature_sets, m.ethtool.channel_sets, m.ethtool.ring_sets)
    et.calls, et.refuse, et.perm_addrs = [], set(), {"ens3": "52:54:00:12:34:56"}
    lib = tmp_path / "usr/lib/systemd/network"
    lib.mkdir(parents=True)
    (lib / "99-default.link").write_text(DEFAULT)
    return m, et


def link(tmp_path):
    return tmp_path / "etc/systemd/network/50-guestcheck-ens3.link"


def test_ring_target():
    r = Rings(rx_max=4096, tx_max=4096, rx=256, tx=256)
    assert ring_target(r, None, None) == {"rx": 4096, "tx": 4096}
    assert ring_target(r, 1024, None) == {"rx": 1024, "tx": 4096}
    with pytest.raises(TuneError, match=r"outside 1\.\.4096"):
        ring_target(r, 8192, None)
    assert ring_target(Rings(rx_max=512, rx=256), None, None) == {"rx": 512}


def test_rings_to_the_maximum_persisted_verified_and_rolled_back(tmp_path):
    m, et = machine(tmp_path, rings=Rings(rx_max=4096, tx_max=4096, rx=256, tx=256))
    result = apply_rings("ens3", m.roots, ethtool=et)
    assert result.done == ["rx: 256 -> 4096 (device maximum 4096)", "tx: 256 -> 4096 (device maximum 4096)"]
    text = link(tmp_path).read_text()
    assert "[Match]\nPermanentMACAddress=52:54:00:12:34:56\n" in text
    assert "NamePolicy=keep kernel database onboard slot path\n" in text and "MACAddressPolicy=persistent\n" in text
    assert "RxBufferSize=4096\nTxBufferSize=4096\n" in text and "Name=" not in text
    assert oct(os.stat(link(tmp_path)).st_mode & 0o777) == "0o644"
    state = load_state(m.roots)
    assert state.rings["ens3"] == {"rx": 256, "tx": 256, "rx_mini": 0, "rx_jumbo": 0}
    assert state.applied["rings"]["ens3"] == {"rx": 4096, "tx": 4096}
    unit = next(u for u in NIC_UNITS if u.name == "rings")
    assert all(c.ok for c in unit.verify(m.roots, state, et).checks)
    assert all(c.ok for c in verify_links(m.roots, state).checks)
    link(tmp_path).write_text(text.replace("RxBufferSize=4096", "RxBufferSize=512"))  # edited since
    drift = verify_links(m.roots, state)
    assert [c.key for c in drift.checks if not c.ok] == ["ens3 next boot RxBufferSize"]
    et.ring_sets["ens3"] = Rings(rx_max=4096, tx_max=4096, rx=4096, tx=1024)  # changed live since
    assert [c.key for c in unit.verify(m.roots, state, et).checks if not c.ok] == ["ens3 tx"]
    rollback(m.roots, ethtool=et)
    assert et.ring_sets["ens3"].rx == 256 and et.ring_sets["ens3"].tx == 256
    assert not link(tmp_path).exists() and load_state(m.roots) is None


def test_rollback_restores_a_file_that_was_at_our_path_exactly(tmp_path):
    m, et = machine(tmp_path, rings=Rings(rx_max=4096, tx_max=4096, rx=256, tx=256))
    link(tmp_path).parent.mkdir(parents=True)
    link(tmp_path).write_bytes(b"[Match]\nOriginalName=ens3\n# \xff admin's\n")
    os.chmod(link(tmp_path), 0o600)
    apply_rings("ens3", m.roots, rx=512, tx=512, ethtool=et)
    assert "RxBufferSize=512" in link(tmp_path).read_text()
    rollback(m.roots, ethtool=et)
    assert link(tmp_path).read_bytes() == b"[Match]\nOriginalName=ens3\n# \xff admin's\n"
    assert os.stat(link(tmp_path)).st_mode & 0o777 == 0o600


def test_offloads_dry_run_lists_causes_first_in_the_order_apply_turns_them_on(tmp_path):
    """README: `tune offloads` turns on the causes first; --dry-run lists them in that same order."""
    m, et = machine(tmp_path, features=dict(SG_OFF))
    planned = list(apply_offloads("ens3", m.roots, dry_run=True, ethtool=et).planned)
    assert planned == ["scatter-gather", "TSO", "GSO"]
    result = apply_offloads("ens3", m.roots, ethtool=et)
    assert [line.split(":")[0] for line in result.done] == planned
    assert list(et.calls[0][2]) == ["tx-scatter-gather", "tx-tcp-segmentation", "tx-generic-segmentation"]


def test_offloads_in_dependency_order_scatter_gather_in_a_udev_rule(tmp_path):
    m, et = machine(tmp_path, features=dict(SG_OFF))
    result = apply_offloads("ens3", m.roots, ethtool=et)
    wanted = et.calls[0][2]
    assert next(iter(wanted)) == "tx-scatter-gather" and wanted["tx-tcp-segmentation"] is True  # sg first
    assert et.feature_sets["ens3"]["tx-tcp-segmentation"].on
    text = link(tmp_path).read_text()
    assert "TCPSegmentationOffload=yes" in text and "GenericSegmentationOffload=yes" in text
    rule = tmp_path / "etc/udev/rules.d/90-guestcheck-ens3.rules"
    assert "no setting for scatter-gather" in rule.read_text()
    assert 'ATTR{address}=="52:54:00:12:34:56", RUN+="/usr/sbin/ethtool -K $name tx-scatter-gather on"' in \
        rule.read_text()
    assert any("90-guestcheck-ens3.rules" in p for p in result.persisted)
    rollback(m.roots, ethtool=et)
    assert et.feature_sets["ens3"] == SG_OFF and not rule.exists() and not link(tmp_path).exists()


def test_another_link_file_that_wins_moves_everything_to_a_udev_rule(tmp_path):
    m, et = machine(tmp_path, channels=Channels(max_combined=4, combined=1))
    admin = tmp_path / "etc/systemd/network/10-admin.link"
    admin.parent.mkdir(parents=True)
    admin.write_text("[Match]\nPermanentMACAddress=52:54:00:12:34:56\n[Link]\nName=lan0\n")
    result = apply_queues("ens3", m.roots, 2, ethtool=et)
    assert any("10-admin.link matches this interface and sorts before" in n for n in result.notes)
    assert not link(tmp_path).exists()
    rule = (tmp_path / "etc/udev/rules.d/90-guestcheck-ens3.rules").read_text()
    assert "another .link file matches" in rule and "ethtool -L $name combined 2" in rule
    rollback(m.roots, ethtool=et)
    assert not (tmp_path / "etc/udev/rules.d/90-guestcheck-ens3.rules").exists() and admin.exists()


def test_no_persist_writes_nothing_for_the_next_boot(tmp_path):
    m, et = machine(tmp_path, rings=Rings(rx_max=4096, tx_max=4096, rx=256, tx=256))
    apply_rings("ens3", m.roots, persist=False, ethtool=et)
    assert et.ring_sets["ens3"].rx == 4096 and not (tmp_path / "etc/systemd").exists()
    assert load_state(m.roots).links == {}


def test_missing_interfaces_and_devices_without_rings(tmp_path):
    m, et = machine(tmp_path)
    with pytest.raises(TuneError, match="no network interface named 'nope0'"):
        apply_rings("nope0", m.roots, ethtool=et)
    with pytest.raises(TuneError, match="no network interface named 'nope0'"):
        apply_queues("nope0", m.roots, 2, ethtool=et)
    with pytest.raises(TuneError, match="cannot read the rings of ens3"):
        apply_rings("ens3", m.roots, ethtool=et)


def test_a_link_file_symlinked_at_our_path_is_refused_before_anything_changes(tmp_path):
    m, et = machine(tmp_path, rings=Rings(rx_max=4096, tx_max=4096, rx=256, tx=256))
    link(tmp_path).parent.mkdir(parents=True)
    link(tmp_path).symlink_to("/dev/null")
    with pytest.raises(TuneError, match="masked"):
        apply_rings("ens3", m.roots, ethtool=et)
    assert et.ring_sets["ens3"].rx == 256 and load_state(m.roots) is None


@pytest.mark.parametrize("links,words", [
    ({"ens3": {"name": "../../etc/passwd"}}, "not a guestcheck .link file name"),
    ({"ens3": {"name": "50-guestcheck-ens3.link", "settings": {"Name": "evil"}}}, "not a .link setting"),
    ({"ens3": {"name": "50-guestcheck-ens3.link", "match": ["OriginalName=x\n[Link]"]}}, "one-line"),
    ({"ens3": {"name": "50-guestcheck-ens3.link", "rule_args": {"K:sg": "on\"; rm"}}}, "not an ethtool setting"),
    ({"ens3": {"name": "50-guestcheck-ens3.link", "rule_name": "../x.rules"}}, "not a guestcheck udev rule"),
])
def test_damaged_link_records_are_refused(links, words):
    import json

    from guestcheck.tune.journal import STATE_SCHEMA

    with pytest.raises(TuneError, match=words):
        state_from_text(json.dumps({"schema": STATE_SCHEMA, "links": links}), "J")
    with pytest.raises(TuneError, match="not a ring size"):
        state_from_text(json.dumps({"schema": STATE_SCHEMA, "rings": {"ens3": {"rx": -1}}}), "J")


def test_a_persist_that_fails_half_way_leaves_no_link_file_behind(tmp_path, monkeypatch):
    """The .link file is written before the udev rule: when the rule cannot be written, the .link file goes too,
    or udev would apply it at the next boot with no journal to roll it back."""
    import guestcheck.tune.units.links as tune_apply

    m, et = machine(tmp_path, features=dict(SG_OFF))
    real = tune_apply.put_persist

    def disk_full_for_rules(now, content, mode):
        if now.path.endswith(".rules") and content is not None:
            raise OSError(28, "No space left on device", now.path)
        return real(now, content, mode)

    monkeypatch.setattr(tune_apply, "put_persist", disk_full_for_rules)
    with pytest.raises(TuneError, match="undid the live change: the system is as it was"):
        apply_offloads("ens3", m.roots, ethtool=et)
    assert not link(tmp_path).exists()
    assert et.feature_sets["ens3"] == SG_OFF and load_state(m.roots) is None


def test_verify_and_rollback_go_through_every_unit_the_journal_touches(tmp_path, monkeypatch):
    m, et = machine(tmp_path, rings=Rings(rx_max=4096, tx_max=4096, rx=256, tx=256))
    apply_rings("ens3", m.roots, ethtool=et)
    state = load_state(m.roots)
    assert [u.name for u in UNITS if u.touched(state)] == ["rings", "links"]
    assert touched_nic_units(state) == ["rings"]
    monkeypatch.setattr("guestcheck.tune.units.nic.EthtoolWriter", lambda: et)
    v = verify_journal(m.roots, state)
    assert v.subject == "rings" and v.ok  # named for what it holds: not "offloads/queues", not "nothing"
    assert [c.key for c in v.checks] == ["ens3 rx", "ens3 tx", "ens3 next boot RxBufferSize",
                                         "ens3 next boot TxBufferSize"]
    et.ring_sets["ens3"] = Rings(rx_max=4096, tx_max=4096, rx=512, tx=4096)  # drift in one unit: NOT in force
    assert not verify_journal(m.roots, state).ok
    dry = rollback(m.roots, dry_run=True, ethtool=et)
    assert dry.actions == ["ens3: restore ring sizes", f"remove {link(tmp_path)}"]
    assert load_state(m.roots) is not None and link(tmp_path).exists()  # a dry run changes nothing


def test_a_sysctl_only_rollback_opens_no_ethtool_socket(tmp_path, monkeypatch):
    k = FakeKernel(tmp_path)
    before = k.snapshot()
    apply_profile(load("throughput", [str(PROFILES)]), k.roots)
    state = load_state(k.roots)
    assert [u.name for u in UNITS if u.touched(state)] == ["sysctl"]

    def no_socket():
        raise AssertionError("a sysctl rollback opened an ethtool socket")

    monkeypatch.setattr("guestcheck.tune.engine.EthtoolWriter", no_socket)
    result = rollback(k.roots, procsys=k.procsys)
    assert result.actions and k.snapshot() == before and load_state(k.roots) is None


def test_a_unit_whose_rollback_fails_keeps_the_journal_and_says_what_was_restored(tmp_path, monkeypatch):
    m, et = machine(tmp_path, rings=Rings(rx_max=4096, tx_max=4096, rx=256, tx=256))
    apply_rings("ens3", m.roots, ethtool=et)

    def broken(self, et, ifname, original):
        raise EthtoolError("io error", "EIO")

    monkeypatch.setattr(RingsUnit, "restore", broken)
    with pytest.raises(TuneError, match=r"^rollback incomplete: ens3: io error: EIO \(\.link files restored, the "
                                        r"journal is kept; run rollback again\)$"):
        rollback(m.roots, ethtool=et)
    assert load_state(m.roots) is not None and not link(tmp_path).exists()
    monkeypatch.undo()
    rollback(m.roots, ethtool=et)  # run again: the rings come back, and the journal goes
    assert et.ring_sets["ens3"].rx == 256 and load_state(m.roots) is None
