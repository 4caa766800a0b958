"""The ledger's qdisc reading on real kernel objects: an ingress redirected to an ifb followed to its shaper, an
htb class's ceil, the namespace named, and the rows doctor --json carries for them."""

from __future__ import annotations

import json

import pytest

from tests.netns import guestcheck_in, netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns]


def doctor_json(ns) -> dict:
    out = guestcheck_in(ns, "doctor", "--json", "--sample", "0.5")
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


def test_ingress_redirected_to_an_ifb_is_followed_to_its_shaper_and_an_htb_ceil_shapes():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("route", "add", "default", "via", "10.199.0.2")
        a.ip("link", "add", "gcifb0", "type", "ifb")
        a.ip("link", "set", "gcifb0", "up")
        a.run(["tc", "qdisc", "add", "dev", "gc0", "ingress"])
        a.run(["tc", "filter", "add", "dev", "gc0", "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0",
               "0", "action", "mirred", "egress", "redirect", "dev", "gcifb0"])
        a.run(["tc", "qdisc", "add", "dev", "gcifb0", "root", "tbf", "rate", "20mbit", "burst", "16kb", "limit",
               "100kb"])
        a.run(["tc", "qdisc", "add", "dev", "gc0", "root", "handle", "1:", "htb", "default", "10"])
        a.run(["tc", "class", "add", "dev", "gc0", "parent", "1:", "classid", "1:10", "htb", "rate", "10mbit", "ceil",
               "50mbit"])
        doc = doctor_json(a)
    ledger = doc["facts"]["ledger"]
    assert ledger["netns"].startswith("net:[") and ledger["netns_is_initial"] is False
    ifb = next(q for q in ledger["qdiscs"] if q["device"] == "gcifb0" and q["kind"] == "tbf")
    assert ifb["ingress_of"] == ["gc0"] and ifb["rate_bytes_per_s"] == 2_500_000 and ifb["limit"] == 102_400
    htb = next(q for q in ledger["qdiscs"] if q["device"] == "gc0" and q["is_class"])
    assert (htb["handle"], htb["rate_bytes_per_s"]) == ("1:10", 6_250_000)
    shaped = {f["subject"]: f for f in doc["findings"] if f["id"] == "QDISC-SHAPED"}
    assert "ingress of gc0 redirected here" in shaped["gcifb0"]["summary"]
    assert "htb class 1:10 parent root shapes to 50.0 Mbit/s" in shaped["gc0"]["summary"]
    rows = {(r["device"], r["detail"], r["counter"]) for r in doc["ledger"]["rows"]}
    assert ("gcifb0", f"tbf {ifb['handle']} root", "overlimits") in rows
