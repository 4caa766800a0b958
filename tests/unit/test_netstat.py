"""collect/netstat.py: nstat's names from /proc/net/snmp, netstat and snmp6, read by column name."""

from __future__ import annotations

from guestcheck.collect.netstat import parse_snmp, parse_snmp6

SNMP = """Ip: Forwarding DefaultTTL InReceives InDiscards
Ip: 2 64 100 3
Tcp: RtoAlgorithm MaxConn OutSegs RetransSegs
Tcp: 1 -1 120000 900
Udp: InDatagrams NoPorts RcvbufErrors
Udp: 50 7 239662
"""


def test_pairs_of_lines_become_nstat_names():
    got = parse_snmp(SNMP)
    assert got["UdpRcvbufErrors"] == 239662 and got["TcpRetransSegs"] == 900 and got["IpInDiscards"] == 3
    assert got["TcpMaxConn"] == -1


def test_a_line_whose_columns_do_not_match_its_header_is_left_out():
    assert "UdpNoPorts" not in parse_snmp("Udp: InDatagrams NoPorts\nUdp: 5\nTcp: A\nTcp: 1\n")
    assert parse_snmp("TcpExt: ListenOverflows\nIpExt: 4\n") == {}
    assert parse_snmp("TcpExt: Listen\u00b2 ListenDrops\nTcpExt: 1 \u00b2\n") == {}


def test_snmp6_name_value_lines():
    assert parse_snmp6("Udp6RcvbufErrors   12\nIp6InDiscards 3\nbad line here\nUdp6NoPorts x\n") == {
        "Udp6RcvbufErrors": 12, "Ip6InDiscards": 3}
