"""The peer string is validated before anything sees it, and only a numeric address reaches iperf3."""

from __future__ import annotations

import socket
import time

import pytest

from guestcheck.selftest import errors
from guestcheck.selftest.errors import SelftestError
from guestcheck.selftest.peer import Peer, is_numeric, parse_peer, resolve


@pytest.mark.parametrize("text,host,port", [
    ("10.199.0.2", "10.199.0.2", 5201),
    ("10.199.0.2:5301", "10.199.0.2", 5301),
    ("peer.example", "peer.example", 5201),
    ("peer-1.example.:7000", "peer-1.example.", 7000),
    ("localhost", "localhost", 5201),
    ("fd00::2", "fd00::2", 5201),
    ("[fd00::2]", "fd00::2", 5201),
    ("[fd00::2]:5301", "fd00::2", 5301),
    ("::1", "::1", 5201),
    ("[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80),
])
def test_accepted_forms(text, host, port):
    assert parse_peer(text) == Peer(host, port)


@pytest.mark.parametrize("text,why", [
    ("-s", "starts with '-'"),
    ("--server", "starts with '-'"),
    ("", "empty"),
    (" 10.0.0.1", "spaces"),
    ("10.0.0.1\n", "spaces"),
    ("a b", "spaces"),
    ("host;reboot", "neither an IP address nor a host name"),
    ("$(id)", "neither"),
    ("`id`", "neither"),
    ("host:0", "port '0'"),
    ("host:65536", "port '65536'"),
    ("host:http", "port 'http'"),
    ("host:", "port ''"),
    ("[fd00::2", "missing ']'"),
    ("[fd00::2]5201", "expected ':PORT'"),
    ("[10.0.0.1]:5201", "is not an IPv6 address"),
    ("fd00::2:5201:x", "not an IPv6 address"),
    ("fe80::1%eth0", "not an IPv6 address"),
    ("host%eth0", "zone indexes"),
    ("a" * 64 + ".example", "neither"),
    ("-1.2.3.4", "starts with '-'"),
])
def test_refused_forms_say_why(text, why):
    with pytest.raises(SelftestError, match=why) as caught:
        parse_peer(text)
    assert caught.value.code == errors.BAD_INPUT
    assert "\n" not in caught.value.message


def test_str_brackets_ipv6():
    assert str(Peer("fd00::2", 5201)) == "[fd00::2]:5201"
    assert str(Peer("10.0.0.1", 5201)) == "10.0.0.1:5201"


def test_numeric_addresses_skip_the_resolver(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("getaddrinfo must not be called for a numeric address")

    monkeypatch.setattr(socket, "getaddrinfo", boom)
    assert resolve(Peer("10.0.0.1", 5201), 1) == "10.0.0.1"
    assert resolve(Peer("fd00::2", 5201), 1) == "fd00::2"
    assert is_numeric("fd00::2") and not is_numeric("peer.example")


def test_a_name_that_does_not_resolve_is_its_own_fault(monkeypatch):
    def nxdomain(*a, **k):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nxdomain)
    with pytest.raises(SelftestError, match=r"cannot resolve .nosuch\.invalid.: Name or service not known") as caught:
        resolve(Peer("nosuch.invalid", 5201), 1)
    assert caught.value.code == errors.NAME


def test_a_hanging_resolver_cannot_outlast_the_timeout(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(5))
    start = time.monotonic()
    with pytest.raises(SelftestError, match=r"no answer within 0\.3s") as caught:
        resolve(Peer("slow.example", 5201), 0.3)
    assert caught.value.code == errors.NAME
    assert time.monotonic() - start < 1.5


def test_resolved_address_is_the_first_answer(monkeypatch):
    answers = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::2", 5201, 0, 0)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.2", 5201))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    assert resolve(Peer("peer.example", 5201), 1) == "fd00::2"
