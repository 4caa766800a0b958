"""Bridges and their STP on the real kernel, inside a namespace: the finding appears, its fix removes it."""

from __future__ import annotations

import json

import pytest

from tests.live.nsdoctor import doctor, findings, run_fix
from tests.netns import netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns]


def bridge_findings(doc: dict) -> dict:
    return findings(doc, "BRIDGE-")


def test_stp_on_is_found_and_the_fix_clears_it() -> None:
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "add", "gcbr0", "type", "bridge", "stp_state", "1")
        a.ip("link", "set", "gc0", "master", "gcbr0")
        a.ip("link", "set", "gcbr0", "up")
        doc = doctor(a)
        found = bridge_findings(doc)
        assert set(found) == {"BRIDGE-STP-ON"}
        f = found["BRIDGE-STP-ON"]
        assert f["subject"] == "gcbr0" and f["severity"] == "warning"
        kernel = json.loads(a.ip("-j", "-d", "link", "show", "gcbr0").stdout)[0]["linkinfo"]["info_data"]
        assert f["evidence"]["forward_delay_s"] == kernel["forward_delay"] / 100 == 15.0
        assert f["evidence"]["ports"]["gc0"] in ("listening", "learning")  # held back by STP
        assert "each new port waits 30 s" in f["summary"]
        assert [b["name"] for b in doc["facts"]["bridges"]] == ["gcbr0"]

        # Both settings in one command fail while STP is on: the kernel sets the delay first and
        # refuses less than 2 s with STP running. That is why the fix is two commands.
        one_go = a.ip("link", "set", "gcbr0", "type", "bridge", "stp_state", "0", "forward_delay", "0", check=False)
        assert one_go.returncode != 0 and "out of range" in one_go.stderr

        run_fix(a, f)  # verbatim, with sh -c
        kernel = json.loads(a.ip("-j", "-d", "link", "show", "gcbr0").stdout)[0]["linkinfo"]["info_data"]
        assert (kernel["stp_state"], kernel["forward_delay"]) == (0, 0)
        doc = doctor(a)
        assert bridge_findings(doc) == {}
        (bridge,) = doc["facts"]["bridges"]
        assert (bridge["stp_state"], bridge["forward_delay_s"]) == (0, 0.0)
        assert bridge["ports"] == [{"name": "gc0", "state": "forwarding"}]


def test_default_bridge_keeps_a_forward_delay_as_info() -> None:
    with netns() as a:
        a.ip("link", "add", "gcbr1", "type", "bridge")  # the kernel's default: STP off, 15 s delay
        found = bridge_findings(doctor(a))
        assert set(found) == {"BRIDGE-FORWARD-DELAY"}
        assert found["BRIDGE-FORWARD-DELAY"]["severity"] == "info"
        run_fix(a, found["BRIDGE-FORWARD-DELAY"])
        assert bridge_findings(doctor(a)) == {}
