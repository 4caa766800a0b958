"""judge/dropreasons.py and checks/dropreasons.py: each reason in its ledger place, FIREWALL-DROPS and
DROPS-UNCOUNTED machine-wide, NOT_SPECIFIED never on its own, and the JSON, human and Prometheus outputs."""

from __future__ import annotations

from guestcheck.checks import dropreasons as check
from guestcheck.doctor import build_report
from guestcheck.facts import DropReasons, DropRow, facts_from_dict
from guestcheck.findings import Severity
from guestcheck.judge import judge
from guestcheck.judge.dropreasons import drops_section, place, reason_totals
from guestcheck.render.human import render
from guestcheck.render.prometheus import render as render_prometheus
from tests.unit.ledgerfacts import ledger_facts


def with_drops(*rows: DropRow, available: bool = True, why: str = ""):
    f = ledger_facts()
    f.drops = DropReasons(available=available, reason_unavailable=why, seconds=3.0, events_seen=9,
                          events_counted=9, reasons_known=128, rows=list(rows))
    return f


NFT = DropRow("NETFILTER_DROP", "ipv4", "nft_do_chain [nf_tables]", 2000)
NOISE = DropRow("NOT_SPECIFIED", "ipv4", "skb_release_data", 40, noise=True)


def findings(f):
    return {x.id: x for x in check.run(f, judge(f))}


def test_known_reasons_have_their_ledger_row_and_finding_and_unknown_ones_their_prefix():
    assert place("SOCKET_RCVBUFF") == ("udp", "UdpRcvbufErrors", "UDP-RCVBUF-ERRORS")
    assert place("IP_RPFILTER") == ("ip", "TcpExtIPReversePathFilter", "IP-RPFILTER-DROPS")
    assert place("QDISC_DROP") == ("qdisc", "drops", "QDISC-DROPS")
    assert place("NO_SOCKET") == ("udp", "UdpNoPorts", "UDP-NO-PORT")
    assert place("TCP_SOMETHING_NEW_IN_7_0") == ("tcp", None, None)
    assert place("0x10002") == (None, None, None)


def test_the_firewall_is_a_warning_that_names_the_command_listing_its_rules_and_claims_no_namespace():
    fw = findings(with_drops(NFT, NOISE))["FIREWALL-DROPS"]
    assert fw.severity == Severity.WARNING and fw.subject == "machine" and "machine-wide" in fw.summary
    assert "nft list ruleset" in fw.hint and not fw.fix
    ipt = findings(with_drops(DropRow("NETFILTER_DROP", "ipv4", "ipt_do_table", 5)))["FIREWALL-DROPS"]
    assert "iptables-save -c" in ipt.hint


def test_not_specified_is_never_reported_on_its_own_and_counted_reasons_leave_it_to_their_finding():
    assert findings(with_drops(NOISE, DropRow("SOCKET_RCVBUFF", "ipv4", "__udp_enqueue_schedule_skb", 9))) == {}


def test_a_reason_no_counter_shows_is_info_by_itself():
    f = findings(with_drops(DropRow("TC_INGRESS", "ipv4", "tcf_classify", 12)))
    assert f["DROPS-UNCOUNTED"].severity == Severity.INFO and "TC_INGRESS: 12" in f["DROPS-UNCOUNTED"].summary


def test_unavailable_says_why_in_one_line_and_raises_nothing():
    f = with_drops(available=False, why="kernel 5.10 is older than 5.17: its kfree_skb carries no reason")
    assert findings(f) == {}
    text = render(build_report(f))
    assert "drop reasons: not sampled: kernel 5.10 is older than 5.17" in text


def test_the_json_section_totals_each_reason_with_its_place_and_the_scope():
    f = with_drops(NFT, DropRow("NETFILTER_DROP", "ipv6", "nft_do_chain [nf_tables]", 3), NOISE)
    section = drops_section(f)
    first = section["reasons"][0]
    assert (first["reason"], first["count"], first["finding"], first["protocols"]) == \
        ("NETFILTER_DROP", 2003, "FIREWALL-DROPS", ["ipv4", "ipv6"])
    assert section["machine_wide"] and "every network namespace" in section["scope"]
    assert build_report(f).to_dict()["drops"]["reasons"][1]["reason"] == "NOT_SPECIFIED"
    assert drops_section(ledger_facts()) is None


def test_drops_round_trip_through_facts_json():
    f = with_drops(NFT)
    again = facts_from_dict(f.to_dict())
    assert [t.count for t in reason_totals(again.drops)] == [2000]


def test_human_and_prometheus_outputs():
    f = with_drops(NFT, NOISE)
    text = render(build_report(f))
    assert "NETFILTER_DROP 2000 (ipv4; nft_do_chain [nf_tables]) -> firewall, FIREWALL-DROPS" in text
    assert "NOT_SPECIFIED" not in text and "NOT_SPECIFIED" in render(build_report(f), verbose=True)
    prom = render_prometheus(build_report(f))
    assert 'guestcheck_drop_reason_packets{reason="NETFILTER_DROP"} 2000' in prom
    assert "guestcheck_drop_reason_window_seconds 3.0" in prom
    assert "guestcheck_drop_reason" not in render_prometheus(build_report(ledger_facts()))
