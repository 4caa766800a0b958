"""checks/offload.py: a fix names the cause of an offload being off and lists the commands that work, causes first."""

from __future__ import annotations

from guestcheck.checks.offload import FINDINGS, check_nic
from guestcheck.doctor import build_report
from guestcheck.facts import Facts, Feature, Nic
from guestcheck.judge.offload import OFFLOADS

ON = Feature(True, False, True, True, False)
OFF_BY_REQUEST = Feature(False, False, False, True, False)
HELD_OFF = Feature(False, False, True, True, False)  # "off [requested on]"
FIXED_OFF = Feature(False, True, False, False, False)

ALL = ("tx-scatter-gather", "tx-checksum-ip-generic", "tx-tcp-segmentation", "tx-tcp6-segmentation",
       "tx-generic-segmentation", "rx-gro", "rx-checksum")


def nic(name="eth0", software_type=None, lowers=None, **states) -> Nic:
    features = {n: ON for n in ALL}
    features.update({k.replace("_", "-"): v for k, v in states.items()})
    return Nic(name=name, kind="software" if software_type else "paravirtual", driver="virtio_net",
               software_type=software_type, operstate="up", features=features, lowers=lowers)


def by_id(n: Nic, facts: Facts = None) -> dict:
    return {f.id: f for f in check_nic(n, facts or Facts(nics=[n]))}


def test_everything_on_is_ok():
    assert by_id(nic()) == {}


def test_off_by_request_prints_the_feature():
    found = by_id(nic(rx_gro=OFF_BY_REQUEST))
    assert found["OFFLOAD-GRO-OFF"].fix == "ethtool -K eth0 gro on"
    assert found["OFFLOAD-GRO-OFF"].fix_on == "guest"


def test_tx_off_holds_tso_off_and_the_fix_is_tx():
    n = nic(tx_checksum_ip_generic=OFF_BY_REQUEST, tx_tcp_segmentation=HELD_OFF, tx_tcp6_segmentation=HELD_OFF)
    found = by_id(n)
    assert found["OFFLOAD-TSO-OFF"].fix == "ethtool -K eth0 tx on"  # never `tso on`: it is requested already
    assert found["OFFLOAD-TSO-OFF"].evidence["tx-tcp-segmentation"] == "off [requested on]"
    assert "needs tx-checksum-ip-generic (tx)" in found["OFFLOAD-TSO-OFF"].summary
    assert found["OFFLOAD-TXCSUM-OFF"].fix == "ethtool -K eth0 tx on"


def test_sg_comes_before_gso_and_tso():
    n = nic(tx_scatter_gather=OFF_BY_REQUEST, tx_generic_segmentation=OFF_BY_REQUEST,
            tx_tcp_segmentation=OFF_BY_REQUEST, tx_tcp6_segmentation=OFF_BY_REQUEST)
    found = by_id(n)
    assert found["OFFLOAD-GSO-OFF"].fix.splitlines() == ["ethtool -K eth0 sg on", "ethtool -K eth0 gso on"]
    assert found["OFFLOAD-TSO-OFF"].fix.splitlines() == ["ethtool -K eth0 sg on", "ethtool -K eth0 tso on"]
    assert found["OFFLOAD-SG-OFF"].fix == "ethtool -K eth0 sg on"


def test_tx_and_sg_both_off_tso_needs_both_in_order():
    n = nic(tx_scatter_gather=OFF_BY_REQUEST, tx_checksum_ip_generic=OFF_BY_REQUEST,
            tx_tcp_segmentation=OFF_BY_REQUEST, tx_tcp6_segmentation=OFF_BY_REQUEST)
    assert by_id(n)["OFFLOAD-TSO-OFF"].fix.splitlines() == [
        "ethtool -K eth0 sg on", "ethtool -K eth0 tx on", "ethtool -K eth0 tso on"]


def test_a_macvlan_held_off_by_its_lower_device_gets_the_lower_devices_fix():
    lower = nic("eth0", rx_gro=OFF_BY_REQUEST, tx_generic_segmentation=OFF_BY_REQUEST)
    upper = nic("mv0", software_type="macvlan", lowers=["eth0"], rx_gro=HELD_OFF, tx_generic_segmentation=HELD_OFF)
    facts = Facts(nics=[lower, upper])
    found = by_id(upper, facts)
    assert found["OFFLOAD-GRO-OFF"].fix == "ethtool -K eth0 gro on"
    assert found["OFFLOAD-GSO-OFF"].fix == "ethtool -K eth0 gso on"
    assert found["OFFLOAD-GRO-OFF"].evidence["reasons"] == [
        "mv0: rx-gro is held off by its lower device eth0, where it is off"]


def test_a_macvlan_over_a_veth_shares_the_veths_gro_exemption():
    """Issue 19: GRO off on a veth is by design, so a macvlan whose GRO the veth holds off is no finding."""
    veth = nic("vb0", software_type="veth", rx_gro=OFF_BY_REQUEST)
    upper = nic("vc0", software_type="macvlan", lowers=["vb0"], rx_gro=HELD_OFF)
    facts = Facts(nics=[veth, upper])
    assert by_id(upper, facts) == {} and by_id(veth, facts) == {}
    upper.features["rx-gro"] = OFF_BY_REQUEST  # `ethtool -K vc0 gro on` would leave it held off by the veth
    assert by_id(upper, facts) == {}
    vlan = nic("vc0.5", software_type="vlan", lowers=["vc0"], rx_gro=HELD_OFF)  # two levels down, still the veth
    assert by_id(vlan, Facts(nics=[veth, upper, vlan])) == {}


def test_a_reason_about_the_lower_device_names_it_in_the_summary():
    """Issue 19: the GSO summary of a macvlan said "needs sg, which is off", true of the lower device only."""
    lower = nic("vb0", software_type="veth", tx_scatter_gather=OFF_BY_REQUEST, tx_generic_segmentation=HELD_OFF)
    upper = nic("vc0", software_type="macvlan", lowers=["vb0"], tx_generic_segmentation=HELD_OFF)
    found = by_id(upper, Facts(nics=[lower, upper]))["OFFLOAD-GSO-OFF"]
    assert found.summary == ("GSO is off: tx-generic-segmentation is held off by its lower device vb0, where it is "
                             "off; on vb0, tx-generic-segmentation needs tx-scatter-gather (sg), which is off")
    assert found.fix == "ethtool -K vb0 sg on"


def test_a_macvlan_whose_lower_is_in_another_namespace_says_so():
    upper = nic("vc0", software_type="macvlan", rx_gro=HELD_OFF)  # moved into a container: no lower here
    found = by_id(upper)["OFFLOAD-GRO-OFF"]
    assert found.fix == "" and "held off by its lower device, which is not in this network namespace" in found.summary


def test_lower_before_upper_when_both_are_off_by_request():
    lower = nic("eth0", rx_gro=OFF_BY_REQUEST)
    upper = nic("vlan 5", software_type="vlan", lowers=["eth0"], rx_gro=OFF_BY_REQUEST)
    fix = by_id(upper, Facts(nics=[lower, upper]))["OFFLOAD-GRO-OFF"].fix
    assert fix.splitlines() == ["ethtool -K eth0 gro on", "ethtool -K 'vlan 5' gro on"]  # names shell-quoted


def test_a_dependency_fixed_off_is_the_hosts_not_a_guest_fix():
    n = nic(tx_scatter_gather=FIXED_OFF, tx_generic_segmentation=OFF_BY_REQUEST, tx_tcp_segmentation=FIXED_OFF,
            tx_tcp6_segmentation=FIXED_OFF, tx_checksum_ip_generic=FIXED_OFF)
    found = by_id(n)
    assert "OFFLOAD-GSO-OFF" not in found  # `ethtool -K eth0 gso on` would fail
    assert found["OFFLOAD-BACKEND-NONE"].fix_on == "host"
    assert found["OFFLOAD-BACKEND-NONE"].fix.splitlines()[1].startswith("QEMU: ")


def test_held_off_for_no_visible_reason_prints_no_command():
    found = by_id(nic(rx_gro=HELD_OFF))
    assert found["OFFLOAD-GRO-OFF"].fix == "" and found["OFFLOAD-GRO-OFF"].fix_on == ""
    assert "cannot see" in found["OFFLOAD-GRO-OFF"].summary


def test_older_facts_without_the_requested_word_still_get_a_command():
    n = nic(rx_gro=Feature(False, False))
    assert by_id(n)["OFFLOAD-GRO-OFF"].fix == "ethtool -K eth0 gro on"


def test_judge_gives_every_guest_fix_its_fix_on():
    n = nic(rx_gro=OFF_BY_REQUEST)
    report = build_report(Facts(nics=[n]))
    (gro,) = [f for f in report.findings if f.id == "OFFLOAD-GRO-OFF"]
    assert gro.fix_on == "guest"
    assert gro.to_dict()["fix_on"] == "guest"


def test_every_offload_finding_is_documented():
    assert {o.finding_id for o in OFFLOADS} < set(FINDINGS)
