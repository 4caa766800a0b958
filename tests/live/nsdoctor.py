"""`guestcheck doctor --json` inside a namespace, and its findings picked by id prefix."""

from __future__ import annotations

import json

from tests.netns import Netns, guestcheck_in


def doctor(ns: Netns) -> dict:
    out = guestcheck_in(ns, "doctor", "--json", "--sample", "0")
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


def findings(doc: dict, prefix: str) -> dict:
    return {f["id"]: f for f in doc["findings"] if f["id"].startswith(prefix)}
