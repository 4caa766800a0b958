"""collect/ethtool.py: the four GFEATURES words decoded by name, and the replay files a fake root carries."""

from __future__ import annotations

import json
import struct

import pytest

from guestcheck.collect.ethtool import DrvInfo, EthtoolError, EthtoolReplay, decode_features, replay_document
from guestcheck.facts import Channels, Feature


def _blocks(words: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(struct.pack("IIII", *w) for w in words)


def test_all_four_words_are_kept_per_feature():
    names = ["tx-scatter-gather", "tx-tcp-segmentation", "rx-gro", "tx-checksum-ipv4"]
    # available, requested, active, never_changed: sg on; tso requested but held off; gro off by request;
    # ipv4 checksum not available (fixed)
    raw = _blocks([(0b0111, 0b0011, 0b0001, 0b0000)])
    f = decode_features(names, raw)
    assert f["tx-scatter-gather"] == Feature(True, False, True, True, False)
    assert f["tx-tcp-segmentation"] == Feature(on=False, fixed=False, requested=True, available=True,
                                               never_changed=False)
    assert f["rx-gro"] == Feature(on=False, fixed=False, requested=False, available=True, never_changed=False)
    assert f["tx-checksum-ipv4"].fixed and not f["tx-checksum-ipv4"].available


def test_features_past_32_take_the_next_block_and_never_changed_means_fixed():
    names = [f"f{i}" for i in range(40)]
    raw = _blocks([(0xFFFFFFFF, 0, 0, 0), (0xFF, 0xFF, 1 << 7, 1 << 7)])
    f = decode_features(names, raw)
    assert f["f39"] == Feature(on=True, fixed=True, requested=True, available=True, never_changed=True)
    assert f["f32"].on is False and f["f32"].requested is True and f["f32"].fixed is False


def test_short_answers_and_empty_names_are_skipped():
    assert decode_features(["", "x", "y"], _blocks([(2, 2, 2, 0)])[:16]) == {
        "x": Feature(True, False, True, True, False), "y": Feature(False, True, False, False, False)}
    assert decode_features([f"f{i}" for i in range(33)], _blocks([(1, 1, 1, 0)])).keys() == {
        f"f{i}" for i in range(32)}


def test_the_tuner_reads_requested_from_the_same_decoder():
    from guestcheck.tune import ethtool_set

    assert not hasattr(ethtool_set, "ETHTOOL_GFEATURES")  # no second decoder of the words
    class Writer(ethtool_set.EthtoolWriter):
        def features(self, ifname):
            return decode_features(["a", "b", "c"], _blocks([(0b011, 0b001, 0b000, 0b010)]))

    assert Writer().requested_features("eth0") == {"a": True}  # b never changes, c is not available


def _replay(tmp_path, doc) -> EthtoolReplay:
    (tmp_path / "eth0.json").write_text(json.dumps(doc))
    return EthtoolReplay(str(tmp_path))


def test_a_replay_document_round_trips(tmp_path):
    drv = DrvInfo("virtio_net", "1.0.0", "", "0000:00:03.0")
    feats = {"rx-gro": Feature(False, False, True, True, False)}
    ch = Channels(max_combined=4, combined=1)
    et = _replay(tmp_path, replay_document(drv, feats, ch))
    assert (et.drvinfo("eth0"), et.features("eth0"), et.channels("eth0")) == (drv, feats, ch)


def test_replay_errors_and_gaps(tmp_path):
    et = _replay(tmp_path, replay_document(None, None, None, {"drvinfo": "denied"}))
    with pytest.raises(EthtoolError) as e:
        et.drvinfo("eth0")
    assert e.value.reason == "denied"
    with pytest.raises(EthtoolError) as e:
        et.features("eth0")
    assert e.value.reason == "not-captured"
    with pytest.raises(EthtoolError) as e:
        et.channels("eth1")
    assert e.value.reason == "not-captured"


@pytest.mark.parametrize("doc", [
    {"features": {"rx-gro": {"on": "yes", "fixed": False}}},
    {"features": {"rx-gro": {"on": True}}},
    {"features": []},
    {"channels": {"combined": -1}},
    {"channels": {"combined": True}},
    {"drvinfo": {"driver": 5}},
    [],
])
def test_malformed_replay_files_are_refused_per_answer(tmp_path, doc):
    et = _replay(tmp_path, doc)
    for call in (et.drvinfo, et.features, et.channels):
        with pytest.raises(EthtoolError) as e:
            call("eth0")
        assert e.value.reason in ("malformed", "not-captured")


@pytest.mark.parametrize("name", ["..", ".", "a/b", ""])
def test_replay_names_cannot_leave_the_directory(tmp_path, name):
    with pytest.raises(EthtoolError) as e:
        EthtoolReplay(str(tmp_path)).drvinfo(name)
    assert e.value.reason == "no-device"


def test_a_fake_root_never_calls_the_live_ioctls(tmp_path, monkeypatch):
    """GUESTCHECK_ROOT covers the ioctls: an interface named like a live one gets the capture's answers."""
    from guestcheck.collect import ethtool as live
    from tests.fakemachine import FakeMachine

    def refuse(*a, **k):
        raise AssertionError("live ioctl under a fake root")

    monkeypatch.setattr(live.Ethtool, "_ioctl", refuse)
    m = FakeMachine(tmp_path)
    m.add_nic("lo", driver=None, bus=None, link_type=772, drvinfo_driver="captured-driver",
              features={"rx-gro": Feature(False, False, False, True, False)})
    m.write_ethtool()
    monkeypatch.setenv("GUESTCHECK_ROOT", str(tmp_path))
    from guestcheck.collect.machine import collect_facts

    nic = collect_facts(sample_seconds=0, cpuid_reader=lambda: None).nic("lo")
    assert nic.driver_ethtool == "captured-driver"
    assert nic.features == {"rx-gro": Feature(False, False, False, True, False)}
