"""A real interface named with a byte that is not UTF-8 (issue 18, item 9): `facts --json` in its namespace is
accepted back by `doctor --facts`, with the findings `doctor --json` gives there directly."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.netns import guestcheck_in, netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns]

NAME = b"n\xff"


def test_a_veth_named_n_0xff_round_trips(tmp_path):
    with netns() as a, netns() as b:
        subprocess.run([b"ip", b"-n", a.name.encode(), b"link", b"add", NAME, b"type", b"veth", b"peer", b"name",
                        b"gcpeer", b"netns", b.name.encode()], check=True, capture_output=True, timeout=30)
        subprocess.run([b"ip", b"-n", a.name.encode(), b"link", b"set", NAME, b"up"], check=True,
                       capture_output=True, timeout=30)
        listed = subprocess.run([b"ip", b"netns", b"exec", a.name.encode(), b"ls", b"/sys/class/net"],
                                check=True, capture_output=True, timeout=30).stdout.split()
        assert NAME in listed  # the kernel holds the byte itself
        facts = guestcheck_in(a, "facts", "--json", "--sample", "0")
        assert facts.returncode == 0 and "Traceback" not in facts.stderr, facts.stderr
        document = json.loads(facts.stdout)
        assert "n\\xff" in [n["name"] for n in document["nics"]]
        saved = tmp_path / "facts.json"
        saved.write_text(facts.stdout, encoding="utf-8")
        direct = guestcheck_in(a, "doctor", "--json", "--sample", "0")
        replayed = guestcheck_in(a, "doctor", "--facts", str(saved), "--json")
        assert replayed.returncode == direct.returncode, replayed.stderr
        assert "Traceback" not in replayed.stderr + direct.stderr
        findings, again = json.loads(direct.stdout)["findings"], json.loads(replayed.stdout)["findings"]
        # the machine moves between the two runs (free memory): the same verdicts, and for the interface the
        # whole finding, evidence and fix included
        assert [(f["id"], f["severity"], f["subject"]) for f in again] == [
            (f["id"], f["severity"], f["subject"]) for f in findings]
        mentions = json.dumps("n\\xff")[1:-1]  # the name as it shows in a finding's JSON text
        assert [f for f in again if mentions in json.dumps(f)] == [f for f in findings if mentions in json.dumps(f)]
        nic = [n for n in json.loads(direct.stdout)["facts"]["nics"] if n["name"] == "n\\xff"]
        assert nic and [n for n in json.loads(replayed.stdout)["facts"]["nics"] if n["name"] == "n\\xff"] == nic
