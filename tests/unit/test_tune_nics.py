"""`tune offloads` and `tune queues` on fake NICs: doctor's flags decide, the journal restores."""

from __future__ import annotations

import os

import pytest

from guestcheck.facts import Channels, Feature
from guestcheck.tune import TuneError
from guestcheck.tune.engine import rollback
from guestcheck.tune.journal import load_state
from guestcheck.tune.units.channels import queue_target
from tests.fakemachine import FakeEthtool, FakeMachine
from tests.tune_fake import apply_offloads, apply_queues, fake_ethtool_writer

Writer = fake_ethtool_writer(FakeEthtool)


def machine(tmp_path, features=None, channels=None, driver="virtio_net"):
    m = FakeMachine(tmp_path)
    m.add_nic("eth0", driver=driver, bus="virtio", features=features, channels=channels)
    et = Writer(m.ethtool.drvinfos, m.ethtool.feature_sets, m.ethtool.channel_sets)
    et.calls, et.refuse = [], set()
    return m, et


OFF = {"tx-tcp-segmentation": Feature(False, False), "tx-tcp6-segmentation": Feature(False, True),
       "tx-generic-segmentation": Feature(False, False), "rx-gro": Feature(True, False),
       "tx-scatter-gather": Feature(True, False), "tx-checksum-ip-generic": Feature(True, True),
       "rx-checksum": Feature(False, True)}


def test_offloads_turns_on_what_doctor_flags_and_rollback_restores(tmp_path):
    m, et = machine(tmp_path, dict(OFF))
    result = apply_offloads("eth0", m.roots, ethtool=et)
    assert et.calls == [("features", "eth0", {"tx-tcp-segmentation": True, "tx-generic-segmentation": True})]
    assert result.done == ["TSO: on (tx-tcp-segmentation)", "GSO: on (tx-generic-segmentation)"]
    assert any("OFFLOAD-BACKEND-NONE" in n for n in result.notes)  # fixed-off checksums: only the host can
    assert et.feature_sets["eth0"]["tx-tcp-segmentation"].on
    assert load_state(m.roots).features["eth0"]["tx-tcp-segmentation"] is False
    assert apply_offloads("eth0", m.roots, ethtool=et).nothing_to_do
    rollback(m.roots, ethtool=et)
    assert et.feature_sets["eth0"] == OFF and load_state(m.roots) is None


def test_offloads_dry_run_and_refusals(tmp_path):
    m, et = machine(tmp_path, dict(OFF))
    result = apply_offloads("eth0", m.roots, dry_run=True, ethtool=et)
    assert set(result.planned) == {"TSO", "GSO"} and et.calls == [] and load_state(m.roots) is None
    et.refuse = {"tx-tcp-segmentation"}
    result = apply_offloads("eth0", m.roots, ethtool=et)
    assert result.done == ["GSO: on (tx-generic-segmentation)"]
    assert any("kept tx-tcp-segmentation off" in n for n in result.notes)


def test_offloads_on_a_missing_interface_is_a_clear_error(tmp_path):
    m, et = machine(tmp_path, dict(OFF))
    with pytest.raises(TuneError, match="no network interface named 'eth9'"):
        apply_offloads("eth9", m.roots, ethtool=et)


def test_queue_target():
    assert queue_target(Channels(max_combined=8, combined=1), 4) == {"combined": 4}
    assert queue_target(Channels(max_combined=2, combined=1), 4) == {"combined": 2}
    assert queue_target(Channels(max_rx=2, max_tx=2, rx=1, tx=1), 4) == {"rx": 2, "tx": 2}  # veth
    assert queue_target(Channels(), 4) is None


def test_queues_set_min_vcpus_max_and_rollback_restores(tmp_path):
    m, et = machine(tmp_path, channels=Channels(max_combined=8, combined=1))
    result = apply_queues("eth0", m.roots, 4, ethtool=et)
    assert result.done == ["combined: 1 -> 4 (device maximum 8, 4 vCPUs)"] and et.channel_sets["eth0"].combined == 4
    assert load_state(m.roots).channels["eth0"] == {"rx": 0, "tx": 0, "other": 0, "combined": 1}
    assert apply_queues("eth0", m.roots, 4, ethtool=et).nothing_to_do
    rollback(m.roots, ethtool=et)
    assert et.channel_sets["eth0"].combined == 1 and load_state(m.roots) is None


def test_queues_on_a_single_fixed_queue_points_to_the_host(tmp_path):
    m, et = machine(tmp_path, channels=Channels())
    with pytest.raises(TuneError, match="only the host can add queues"):
        apply_queues("eth0", m.roots, 4, ethtool=et)
    m2, et2 = machine(tmp_path / "b")
    with pytest.raises(TuneError, match="cannot read the channels of eth0"):
        apply_queues("eth0", m2.roots, 4, ethtool=et2)


def set_boot_id(m, value):
    path = os.path.join(m.roots.proc, "sys/kernel/random/boot_id")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(value + "\n")


def test_rollback_after_a_reboot_leaves_live_only_nic_settings_alone(tmp_path):
    m, et = machine(tmp_path, dict(OFF), channels=Channels(max_combined=8, combined=1))
    set_boot_id(m, "11111111-1111-1111-1111-111111111111")
    apply_offloads("eth0", m.roots, ethtool=et, persist=False)
    apply_queues("eth0", m.roots, 4, ethtool=et, persist=False)
    assert load_state(m.roots).boot_id == "11111111-1111-1111-1111-111111111111"
    set_boot_id(m, "22222222-2222-2222-2222-222222222222")  # a reboot: the driver's defaults are back
    et.feature_sets["eth0"], et.channel_sets["eth0"] = dict(OFF), Channels(max_combined=8, combined=1)
    et.calls = []
    result = rollback(m.roots, ethtool=et)
    assert et.calls == [] and result.actions == []
    assert any("the reboot since put them back: nothing to restore" in n for n in result.notes)
    assert load_state(m.roots) is None


def test_offloads_after_a_reboot_record_todays_originals(tmp_path):
    m, et = machine(tmp_path, dict(OFF))
    set_boot_id(m, "11111111-1111-1111-1111-111111111111")
    apply_offloads("eth0", m.roots, ethtool=et, persist=False)
    set_boot_id(m, "22222222-2222-2222-2222-222222222222")
    et.feature_sets["eth0"] = {**OFF, "rx-gro": Feature(False, False)}  # booted with another default
    apply_offloads("eth0", m.roots, ethtool=et, persist=False)
    assert load_state(m.roots).features["eth0"]["rx-gro"] is False
    rollback(m.roots, ethtool=et)
    assert et.feature_sets["eth0"]["rx-gro"] == Feature(False, False)
