"""sockdiag.py: inet_diag answers decoded (a listener's queue and backlog; a connection's tcp_info, SKMEMINFO and
congestion control), hostile bytes skipped."""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st

from guestcheck.rtnetlink import NLMSG, RTA, align
from guestcheck.sockdiag import (
    INET_DIAG_CONG,
    INET_DIAG_INFO,
    INET_DIAG_SKMEMINFO,
    MSG,
    SOCK_DIAG_BY_FAMILY,
    decode,
    decode_flow,
    listeners,
    parse_diag,
    parse_flows,
    tcp_flows,
)
from guestcheck.tcpinfo import TCP_INFO_FIELDS, TCP_INFO_SIZE, SkMemInfo, TcpInfo, decode_skmeminfo, decode_tcp_info
from tests.loopback import loopback_connection, send_and_receive


def answer(family: int = socket.AF_INET, port: int = 8080, rqueue: int = 2, wqueue: int = 1) -> bytes:
    text = "fd00::1" if family == socket.AF_INET6 else "10.0.0.1"
    src = socket.inet_pton(socket.AF_INET6 if family == socket.AF_INET6 else socket.AF_INET, text).ljust(16, b"\0")
    return MSG.pack(family, 10, 0, 0, socket.htons(port), 0, src, b"\0" * 16, 0, b"\0" * 8, 0, rqueue, wqueue, 0,
                    77)


def test_a_listener_answer_gives_its_address_queue_and_backlog():
    s = decode(SOCK_DIAG_BY_FAMILY, answer())
    assert (s.family, s.local, s.local_port, s.rqueue, s.wqueue, s.inode) == ("ipv4", "10.0.0.1", 8080, 2, 1, 77)
    assert decode(SOCK_DIAG_BY_FAMILY, answer(socket.AF_INET6)).local == "fd00::1"


def test_short_foreign_or_other_family_answers_are_skipped():
    assert decode(SOCK_DIAG_BY_FAMILY, answer()[:40]) is None
    assert decode(3, answer()) is None
    assert decode(SOCK_DIAG_BY_FAMILY, answer(family=99)) is None


@given(st.binary(max_size=400))
def test_random_buffers_never_raise(data: bytes):
    parse_diag(data)
    decode(SOCK_DIAG_BY_FAMILY, data)


def test_this_process_s_listener_is_listed_with_its_backlog():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(3)
        port = s.getsockname()[1]
        mine = [x for x in listeners() if x.local_port == port and x.local == "127.0.0.1"]
        assert [(x.state, x.rqueue, x.wqueue) for x in mine] == [(10, 0, 3)]


# --- connections with tcp_info, SKMEMINFO and the congestion control (guestcheck flows) ---


def attr(kind: int, payload: bytes) -> bytes:
    return (RTA.pack(RTA.size + len(payload), kind) + payload).ljust(align(RTA.size + len(payload)), b"\0")


def tcp_info_bytes(**values: int) -> bytes:
    """A struct tcp_info with `values` set by field name, the rest 0."""
    import struct

    fmt = "=" + "".join(code for _, code in TCP_INFO_FIELDS)
    return struct.pack(fmt, *(values.get(name, 0) for name, _ in TCP_INFO_FIELDS))


def flow_answer(info: bytes = b"", mem: bytes = b"", cong: bytes = b"", family: int = socket.AF_INET) -> bytes:
    src = socket.inet_pton(family, "10.0.0.1" if family == socket.AF_INET else "::ffff:10.0.0.1").ljust(16, b"\0")
    dst = socket.inet_pton(family, "10.0.0.2" if family == socket.AF_INET else "::ffff:10.0.0.2").ljust(16, b"\0")
    head = MSG.pack(family, 1, 0, 0, socket.htons(5201), socket.htons(40000), src, dst, 0,
                    (1234).to_bytes(8, "little"), 0, 5, 6, 0, 99)
    extra = attr(8, b"\0")  # INET_DIAG_SHUTDOWN, which every answer carries
    if info:
        extra += attr(INET_DIAG_INFO, info)
    if mem:
        extra += attr(INET_DIAG_SKMEMINFO, mem)
    if cong:
        extra += attr(INET_DIAG_CONG, cong)
    return head + extra


def test_tcp_info_is_decoded_by_offset_in_the_kernel_s_layout():
    # offsets from include/uapi/linux/tcp.h: rtt at 68, snd_cwnd 80, bytes_acked 120, min_rtt 148, busy_time 168,
    # snd_wnd 228, the struct 232 bytes in all (as Debian 12's and 6.18's headers have it)
    import struct

    fmt = "=" + "".join(code for _, code in TCP_INFO_FIELDS)
    assert struct.calcsize(fmt) == TCP_INFO_SIZE == 232
    names = [n for n, _ in TCP_INFO_FIELDS]
    assert list(TcpInfo._fields) == names
    raw = tcp_info_bytes(rtt=1500, snd_cwnd=10, bytes_acked=2**40, min_rtt=900, busy_time=7, rwnd_limited=3,
                         sndbuf_limited=2, snd_wnd=65536, flags=1)
    assert struct.unpack_from("=I", raw, 68)[0] == 1500 and struct.unpack_from("=Q", raw, 120)[0] == 2**40
    assert struct.unpack_from("=I", raw, 148)[0] == 900 and struct.unpack_from("=Q", raw, 168)[0] == 7
    info = decode_tcp_info(raw)
    assert (info.rtt, info.snd_cwnd, info.bytes_acked, info.min_rtt, info.busy_time, info.rwnd_limited,
            info.sndbuf_limited, info.snd_wnd, info.app_limited) == (1500, 10, 2**40, 900, 7, 3, 2, 65536, True)


def test_an_older_kernel_s_shorter_struct_leaves_the_newer_fields_none():
    raw = tcp_info_bytes(rtt=1500, bytes_acked=100, busy_time=5)
    old = decode_tcp_info(raw[:104])  # a 3.x kernel: up to total_retrans
    assert old.rtt == 1500 and old.bytes_acked is None and old.busy_time is None
    cut = decode_tcp_info(raw[:170])  # mid-field: busy_time (168..176) is not whole
    assert cut.delivery_rate == 0 and cut.busy_time is None
    assert decode_tcp_info(b"").state is None and decode_tcp_info(b"\x01").state == 1
    assert decode_tcp_info(raw + b"\xff" * 48).busy_time == 5  # a newer kernel's longer struct: the tail ignored


def test_skmeminfo_and_the_congestion_control_name():
    mem = decode_skmeminfo(bytes(range(36)))
    assert isinstance(mem, SkMemInfo) and mem.drops is not None
    short = decode_skmeminfo((7).to_bytes(4, "little") * 4)
    assert (short.rmem_alloc, short.sndbuf, short.fwd_alloc, short.drops) == (7, 7, None, None)
    f = decode_flow(SOCK_DIAG_BY_FAMILY, flow_answer(cong=b"cu\x1bbic\0junk"))
    assert f.cong == "cu?bic"


def test_a_flow_answer_gives_addresses_ports_cookie_and_its_attributes():
    mem = b"".join(v.to_bytes(4, "little") for v in (1, 2, 3, 4, 5, 6, 7, 8, 9))
    f = decode_flow(SOCK_DIAG_BY_FAMILY, flow_answer(tcp_info_bytes(bytes_acked=10, bytes_received=20), mem,
                                                      b"bbr\0"))
    assert (f.family, f.local, f.local_port, f.remote, f.remote_port) == ("ipv4", "10.0.0.1", 5201, "10.0.0.2",
                                                                         40000)
    assert (f.rqueue, f.wqueue, f.inode, f.cookie, f.cong, f.info_length) == (5, 6, 99, 1234, "bbr", 232)
    assert f.volume() == (10, 20) and f.info.bytes_received == 20 and f.meminfo.sndbuf == 4
    mapped = decode_flow(SOCK_DIAG_BY_FAMILY, flow_answer(family=socket.AF_INET6))
    assert (mapped.family, mapped.remote, mapped.info, mapped.meminfo, mapped.volume()) == (
        "ipv6", "::ffff:10.0.0.2", None, None, None)


def test_a_malformed_attribute_ends_the_walk_and_keeps_what_came_before():
    good = flow_answer(tcp_info_bytes(rtt=5))
    bad = good + RTA.pack(400, INET_DIAG_SKMEMINFO) + b"\0" * 8  # claims more than there is
    f = decode_flow(SOCK_DIAG_BY_FAMILY, bad)
    assert f.info.rtt == 5 and f.meminfo is None
    framed = NLMSG.pack(NLMSG.size + len(good), SOCK_DIAG_BY_FAMILY, 0, 0, 0) + good
    assert [x.info.rtt for x in parse_flows(framed + framed[:30])] == [5]


def test_this_process_s_connection_is_listed_from_both_ends():
    with loopback_connection() as (client, accepted, port):
        send_and_receive(client, accepted, 100_000)
        mine = {(f.local_port == port): f for f in tcp_flows()
                if port in (f.local_port, f.remote_port) and f.local == "127.0.0.1"}
        sender, receiver = mine[False], mine[True]
        assert sender.info.bytes_acked >= 100_000 and receiver.info.bytes_received == 100_000
        assert sender.info.min_rtt and receiver.info.rcv_space and sender.meminfo.sndbuf > 0
        assert sender.cookie != receiver.cookie and sender.info.state == 1


def test_the_byte_counts_are_read_at_their_offset_in_tcp_info():
    from guestcheck import sockdiag, tcpinfo

    before = [name for name, _ in TCP_INFO_FIELDS].index("bytes_acked")
    assert tcpinfo._INFO_ENDS[before - 1] == sockdiag._VOLUME_AT


def test_one_dump_of_both_families_or_one_per_family_when_the_old_request_is_refused(monkeypatch):
    from guestcheck import sockdiag

    asked = []

    def dump(kind, request, protocol):
        asked.append((kind, request[0]))
        if kind == sockdiag.TCPDIAG_GETSOCK and refuse:
            raise OSError(95, "Operation not supported")
        return [(kind, answer())]

    monkeypatch.setattr(sockdiag, "dump", dump)
    refuse = False
    assert len(sockdiag.tcp_dump(1 << 10)) == 1 and asked == [(sockdiag.TCPDIAG_GETSOCK, socket.AF_UNSPEC)]
    asked.clear()
    refuse = True
    assert len(sockdiag.tcp_dump(1 << 10)) == 2
    assert asked == [(sockdiag.TCPDIAG_GETSOCK, 0), (SOCK_DIAG_BY_FAMILY, socket.AF_INET),
                     (SOCK_DIAG_BY_FAMILY, socket.AF_INET6)]


def test_one_reading_lists_listeners_and_connections_of_both_families():
    from guestcheck.sockdiag import tcp_reading

    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.1", 0))
        v6.bind(("::1", 0))
        v4.listen(2)
        v6.listen(2)
        with socket.create_connection(v4.getsockname()), socket.create_connection(v6.getsockname()[:2]):
            listening, flows = tcp_reading()
            ports = {v4.getsockname()[1], v6.getsockname()[1]}
            assert {(s.family, s.local_port) for s in listening if s.local_port in ports} == {
                ("ipv4", v4.getsockname()[1]), ("ipv6", v6.getsockname()[1])}
            mine = [f for f in flows if ports & {f.local_port, f.remote_port}]
            assert sorted(f.family for f in mine) == ["ipv4", "ipv4", "ipv6", "ipv6"]
            assert all(f.state == 1 and f.info_length > 0 for f in mine)
