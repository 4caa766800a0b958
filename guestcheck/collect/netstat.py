"""The IP, UDP and TCP counters of this network namespace, named as `nstat` names them.

/proc/net/snmp and /proc/net/netstat are pairs of lines, a header ("Udp: InDatagrams NoPorts ...") and its values
("Udp: 1234 5 ..."): the prefix joined to each column gives nstat's name (UdpRcvbufErrors, TcpExtListenOverflows,
IpExtInNoRoutes). /proc/net/snmp6 is one "Udp6RcvbufErrors  12" per line. The columns are read by name, never by
position, so a kernel that adds or reorders them is read the same. Every counter here is per network namespace.
"""

from __future__ import annotations

from typing import Dict, Optional

from guestcheck.quantities import maybe_int

MAX_COLUMNS = 512  # a header wider than this is not the kernel's


def parse_snmp(text: Optional[str]) -> Dict[str, int]:
    """nstat name -> value from the paired lines of /proc/net/snmp or /proc/net/netstat."""
    out: Dict[str, int] = {}
    lines = (text or "").splitlines()
    for header, values in zip(lines[::2], lines[1::2]):
        prefix, _, names = header.partition(":")
        prefix_v, _, numbers = values.partition(":")
        if prefix != prefix_v or not prefix.isalnum() or not prefix.isascii():
            continue
        columns, fields = names.split(), numbers.split()
        if len(columns) != len(fields) or len(columns) > MAX_COLUMNS:
            continue
        for name, field in zip(columns, fields):
            value = maybe_int(field, signed=True)
            if value is not None and name.isalnum() and name.isascii():
                out[prefix + name] = value
    return out


def parse_snmp6(text: Optional[str]) -> Dict[str, int]:
    """nstat name -> value from /proc/net/snmp6 (one "Name value" per line)."""
    out: Dict[str, int] = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isalnum() and fields[0].isascii():
            value = maybe_int(fields[1], signed=True)
            if value is not None:
                out[fields[0]] = value
    return out
