"""guestcheck flows and doctor's FLOW-* findings on real connections between two namespaces (iperf3 over a veth
shaped with tbf): each verdict this kernel can build. send-buffer needs a real round trip (GSO defeats a tiny send
buffer on a veth): tests/vm."""

from __future__ import annotations

import json
import shutil
import time
from typing import List, Tuple

import pytest

from tests.netns import Netns, guestcheck_in, iperf3_pair, requires_netns

pytestmark = [requires_netns, pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")]


def shaped_pair(rate: str, *, limit: str = "20ms", rmem: str = ""):
    return iperf3_pair("gcfl", rate, latency=limit, rmem=rmem, server=("-s", "-1"))


def during_transfer(a: Netns, b: Netns, extra: List[str], *commands: Tuple[Netns, List[str]]) -> list:
    client = a.popen(["iperf3", "-c", "10.199.0.2", "-t", "6", *extra])
    try:
        time.sleep(1.5)
        return [guestcheck_in(ns, *args) for ns, args in commands]
    finally:
        client.kill()
        client.wait()


def flows_doc(out) -> dict:
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


def busiest(doc: dict) -> dict:
    return doc["flows"][0]


def test_a_tiny_receive_buffer_is_receive_window_on_both_sides_with_the_sized_fix():
    with shaped_pair("1gbit", rmem="4096 4096 4096") as (a, b):
        sent, got = during_transfer(a, b, [], (a, ["flows", "--json"]), (b, ["flows", "--json"]))
    s, r = busiest(flows_doc(sent)), busiest(flows_doc(got))
    assert (s["role"], s["limited_by"], r["role"], r["limited_by"]) == ("sender", "receive-window", "receiver",
                                                                      "receive-window")
    assert sent.returncode == 1 and got.returncode == 1
    assert s["fix"].startswith("guestcheck tune apply wan --rate 1G --rtt ")
    assert s["fix_on"] == "the receiver, 10.199.0.2"
    assert r["fix_on"] == "here"


def test_iperf3_at_10_mbit_on_a_fast_path_is_application():
    with shaped_pair("1gbit") as (a, b):
        (out,) = during_transfer(a, b, ["-b", "10M"], (a, ["flows", "--json"]))
    flow = busiest(flows_doc(out))
    assert flow["limited_by"] == "application" and out.returncode == 0


def test_a_flow_at_the_shaped_rate_is_none():
    with shaped_pair("100mbit") as (a, b):
        (out,) = during_transfer(a, b, [], (a, ["flows", "--json"]))
    flow = busiest(flows_doc(out))
    assert flow["limited_by"] == "none" and flow["rule"] == "S1" and out.returncode == 0


def test_a_short_queue_with_loss_is_congestion():
    with shaped_pair("100mbit", limit="1ms") as (a, b):
        (out,) = during_transfer(a, b, ["-P", "4"], (a, ["flows", "--json"]))
    doc = flows_doc(out)
    congested = [f for f in doc["flows"] if f["limited_by"] == "congestion"]
    assert congested, [(f["rule"], f["retrans_share"], f["rate_bps"]) for f in doc["flows"]]
    assert out.returncode == 1


def test_doctor_gives_flow_rwnd_limited_on_both_sides():
    with shaped_pair("1gbit", rmem="4096 4096 4096") as (a, b):
        sent, got = during_transfer(a, b, [], (a, ["doctor", "--json", "--only", "FLOW-*"]),
                                    (b, ["doctor", "--json", "--only", "FLOW-*"]))
    s = [f for f in json.loads(sent.stdout)["findings"] if f["id"] == "FLOW-RWND-LIMITED"]
    r = [f for f in json.loads(got.stdout)["findings"] if f["id"] == "FLOW-RWND-LIMITED"]
    assert s and not s[0]["fix"] and "on the receiver (10.199.0.2)" in s[0]["hint"]
    assert r and r[0]["fix"].startswith("guestcheck tune apply wan --rate 1G") and r[0]["fix_on"] == "guest"
