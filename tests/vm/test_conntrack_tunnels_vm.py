"""conntrack and tunnels in a QEMU guest, whose kernel is its own: a child namespace on the host sees the host's
read-only nf_conntrack_max and this host's kernel has no gre, geneve, ip6tnl or wireguard. One boot runs
tests/vm/conntrack_tunnels_guest.py, which applies each finding's own fix verbatim (sh -c)."""

from __future__ import annotations

import json

import pytest

from . import guest

pytestmark = pytest.mark.vm


def ids(doc: dict, prefix: str) -> dict:
    return {(f["id"], f["subject"]): f for f in doc["findings"] if f["id"].startswith(prefix)}


@pytest.fixture(scope="module")
def run(vm_image) -> dict:
    result = guest.run_in_guest("python3 tests/vm/conntrack_tunnels_guest.py", timeout=420)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr[-2000:])
    return json.loads(result.stdout)


def test_a_small_table_filled_by_real_connections_warns_and_its_fix_clears_it(run):
    assert run["count_before"] >= 56
    full = run["full"]
    ct = full["facts"]["conntrack"]
    assert (ct["loaded"], ct["max"]) == (True, 64) and ct["count"] >= 52
    f = ids(full, "CONNTRACK-TABLE-FULL")[("CONNTRACK-TABLE-FULL", "conntrack")]
    assert f["severity"] == "warning" and f["evidence"]["max"] == 64
    assert run["fix"].startswith("sysctl -w net.netfilter.nf_conntrack_max=128\ncat > ")
    assert run["fix_rc"] == 0 and run["max_after_fix"] == 128
    assert run["sysctl_d"] == "net.netfilter.nf_conntrack_max = 128\n"
    raised = run["raised"]
    assert raised["facts"]["conntrack"]["max"] == 128
    assert "CONNTRACK-TABLE-FULL" not in {i for i, _ in ids(raised, "CONNTRACK-")}


def test_drops_during_the_sample_are_critical(run):
    doc = run["dropping"]
    ct = doc["facts"]["conntrack"]
    assert sum(ct["in_sample"].values()) > 0, ct
    f = ids(doc, "CONNTRACK-DROPS")[("CONNTRACK-DROPS", "conntrack")]
    assert f["severity"] == "critical" and doc["_rc"] == 2


def test_tunnels_without_room_are_found_and_their_fixes_clear_them(run):
    made = run["tunnels_made"]
    expected = {"gctgre": 28, "gctgnv": 50, "gct6": 48, "gctwg": 60}  # gre with a key; ip6tnl's encap limit
    present = {name for name, ok in made.items() if ok is True}
    assert present, made
    before = run["tunnels_before"]
    tunnels = {t["name"]: t for t in before["facts"]["tunnels"]}
    found = {s: f for (_, s), f in ids(before, "TUNNEL-MTU").items()}
    assert set(found) == present, (sorted(found), made, json.dumps(tunnels))
    for name in present:
        t = tunnels[name]
        assert (t["overhead"], t["lower"], t["lower_mtu"]) == (expected[name], "gcv0", 1400), t
        assert found[name]["fix"] == f"ip link set dev {name} mtu {1400 - expected[name]}"
        assert run["tunnel_fixes"][name][1] == 0
    assert ids(run["tunnels_after"], "TUNNEL-MTU") == {}
