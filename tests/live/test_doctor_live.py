"""doctor on real kernel objects: veth, bridge, macvlan and tun inside network namespaces we make."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.netns import guestcheck_in, netns, requires_netns, veth_pair

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")]


def doctor_json(ns, *extra: str) -> tuple[int, dict]:
    out = guestcheck_in(ns, "doctor", "--json", "--sample", "0", *extra)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def by_name(doc: dict) -> dict:
    return {n["name"]: n for n in doc["facts"]["nics"]}


def test_software_interfaces_are_classified_from_the_kernel():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "add", "gcbr0", "type", "bridge")
        a.ip("link", "set", "gcbr0", "up")
        a.ip("link", "add", "link", "gc0", "name", "gcmv0", "type", "macvlan", "mode", "bridge")
        a.ip("tuntap", "add", "dev", "gctap0", "mode", "tap")
        _, doc = doctor_json(a)
        nics = by_name(doc)
        expect = {"gc0": "veth", "gcbr0": "bridge", "gcmv0": "macvlan", "gctap0": "tun", "lo": "loopback"}
        for name, software_type in expect.items():
            assert nics[name]["kind"] == "software", nics[name]
            assert nics[name]["software_type"] == software_type
            assert nics[name]["bus"] == "none"
        assert nics["gc0"]["driver_ethtool"] == "veth"
        assert nics["gcbr0"]["driver_ethtool"] == "bridge"
        assert nics["gc0"]["features"]["tx-tcp-segmentation"] == {
            "on": True, "fixed": False, "requested": True, "available": True, "never_changed": False}
        assert nics["gc0"]["mtu"] == 1500 and nics["gc0"]["operstate"] == "up"
        # a network namespace changes the interfaces, not the machine: same verdict as outside it
        from guestcheck.collect.machine import collect_facts
        from guestcheck.judge import judged_facts

        assert doc["facts"]["virt"]["hypervisor"] == judged_facts(collect_facts(sample_seconds=0)).virt.hypervisor


def offload_problems(doc: dict, *subjects: str) -> list:
    """The offload findings that are not ok (OFFLOAD-ON, ok, says the area was checked and found fine)."""
    return [f for f in doc["findings"]
            if f["id"].startswith("OFFLOAD") and f["severity"] != "ok" and f["subject"] in subjects]


def offloads_ok(doc: dict, subject: str) -> bool:
    return any(f["id"] == "OFFLOAD-ON" and f["subject"] == subject for f in doc["findings"])


def test_offloads_switched_off_appear_and_disappear():
    with netns() as a, netns() as b, veth_pair(a, b):
        code, doc = doctor_json(a)
        assert not offload_problems(doc, "gc0") and offloads_ok(doc, "gc0")
        a.run(["ethtool", "-K", "gc0", "tso", "off", "gso", "off", "sg", "off", "tx", "off"])
        code, doc = doctor_json(a)
        found = {f["id"]: f for f in doc["findings"] if f["subject"] == "gc0"}
        assert {"OFFLOAD-TSO-OFF", "OFFLOAD-GSO-OFF", "OFFLOAD-SG-OFF", "OFFLOAD-TXCSUM-OFF"} <= set(found)
        # GSO needs scatter-gather: its fix turns sg on first
        assert found["OFFLOAD-GSO-OFF"]["fix"] == "ethtool -K gc0 sg on\nethtool -K gc0 gso on"
        assert found["OFFLOAD-TSO-OFF"]["evidence"]["tx-tcp-segmentation"] == "off"
        assert code == 1 and doc["status"] == "warning"
        # the fixes the findings give, run as they are, in the order doctor prints them, clear them
        for f in doc["findings"]:
            if f["subject"] == "gc0" and f["id"].startswith("OFFLOAD"):
                for line in f["fix"].splitlines():
                    a.run(["sh", "-c", line])
        code, doc = doctor_json(a)
        assert not offload_problems(doc, "gc0") and offloads_ok(doc, "gc0")


def test_a_macvlan_over_a_veth_gets_no_gro_finding_and_its_gso_summary_names_the_lower():
    """Issue 19: GRO off on a veth is exempt by design, and so is the macvlan it holds GRO off for; a GSO summary
    that comes from the lower device's sg names that device, and its fix (on the lower) clears both."""
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "add", "link", "gc0", "name", "vc0", "type", "macvlan", "mode", "bridge")
        a.ip("link", "set", "vc0", "up")
        assert "generic-receive-offload: off [requested on]" in a.run(["ethtool", "-k", "vc0"]).stdout
        _, doc = doctor_json(a)
        assert not offload_problems(doc, "vc0", "gc0") and offloads_ok(doc, "vc0") and offloads_ok(doc, "gc0")
        a.run(["ethtool", "-K", "gc0", "sg", "off"])
        _, doc = doctor_json(a)
        found = {f["id"]: f for f in offload_problems(doc, "vc0")}
        assert set(found) == {"OFFLOAD-GSO-OFF"}, found
        gso = found["OFFLOAD-GSO-OFF"]
        assert "held off by its lower device gc0" in gso["summary"]
        assert "on gc0, tx-generic-segmentation needs tx-scatter-gather (sg), which is off" in gso["summary"]
        assert gso["fix"] == "ethtool -K gc0 sg on"
        a.run(["sh", "-c", gso["fix"]])
        _, doc = doctor_json(a)
        assert not offload_problems(doc, "vc0", "gc0") and offloads_ok(doc, "vc0") and offloads_ok(doc, "gc0")


def test_only_and_skip_select_findings():
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "gso", "off"])
        _, doc = doctor_json(a, "--only", "OFFLOAD-*")
        assert doc["findings"] and all(f["id"].startswith("OFFLOAD") for f in doc["findings"])
        _, doc = doctor_json(a, "--skip", "OFFLOAD-GSO-OFF")
        assert "OFFLOAD-GSO-OFF" not in {f["id"] for f in doc["findings"]}
        assert "VIRT-PLATFORM" in {f["id"] for f in doc["findings"]}
        out = guestcheck_in(a, "doctor", "--only", "NO-SUCH-ID")
        assert out.returncode == 3 and "unknown finding id" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_non_root_run_degrades_to_unknown_values():
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with netns() as a, netns() as b, veth_pair(a, b):
        out = subprocess.run(
            ["ip", "netns", "exec", a.name, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "env", f"PYTHONPATH={repo}", sys.executable, "-m", "guestcheck", "doctor", "--json", "--sample", "0"],
            capture_output=True, text=True, timeout=60, cwd="/")
        assert "Traceback" not in out.stderr, out.stderr
        doc = json.loads(out.stdout)
        assert doc["facts"]["host"]["is_root"] is False
        assert by_name(doc)["gc0"]["driver_ethtool"] == "veth"  # the GET ioctls need no privilege
        assert out.returncode in (0, 1, 2, 3)


def test_facts_round_trip_gives_the_machines_own_findings(tmp_path):
    """doctor on the machine equals doctor on its dumped facts (a support engineer's offline workflow)."""
    with netns() as a, netns() as b, veth_pair(a, b):
        a.ip("link", "add", "gcbr0", "type", "bridge", "stp_state", "1")
        a.ip("link", "set", "gcbr0", "up")
        a.run(["ethtool", "-K", "gc0", "gso", "off"])
        live = guestcheck_in(a, "doctor", "--json", "--sample", "0.5")
        saved = tmp_path / "report.json"
        saved.write_text(live.stdout)
        offline = guestcheck_in(a, "doctor", "--json", "--facts", str(saved))
        live_doc, offline_doc = json.loads(live.stdout), json.loads(offline.stdout)
        assert offline_doc["findings"] == live_doc["findings"]
        assert (offline.returncode, offline_doc["status"]) == (live.returncode, live_doc["status"])
        assert {"BRIDGE-STP-ON", "OFFLOAD-GSO-OFF"} <= {f["id"] for f in live_doc["findings"]}

        facts = guestcheck_in(a, "facts", "--sample", "0")
        (tmp_path / "facts.json").write_text(facts.stdout)
        from_facts = json.loads(guestcheck_in(a, "doctor", "--json", "--facts", str(tmp_path / "facts.json")).stdout)
        _, again = doctor_json(a)

        def verdicts(doc: dict) -> list:
            return sorted((f["id"], f["subject"], f["severity"]) for f in doc["findings"])

        assert verdicts(from_facts) == verdicts(again)
