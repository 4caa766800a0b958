"""The guestcheck.selftest/1 document (schema in README.md), written atomically, read back to compare.

`--save FILE` before tuning and `--compare FILE` after show what the tuning changed, run by run.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from guestcheck import __version__
from guestcheck.atomicfile import write_atomic
from guestcheck.selftest.errors import FILE_ERROR, SelftestError
from guestcheck.selftest.session import Result

SCHEMA = "guestcheck.selftest/1"


def to_document(result: Result) -> dict[str, Any]:
    plan = result.plan
    return {
        "schema": SCHEMA,
        "guestcheck_version": __version__,
        "started_at": result.started_at,
        "peer": {"host": plan.peer.host, "port": plan.peer.port, "address": result.address},
        "iperf3": {"path": result.iperf3_path, "version": result.runs[0].iperf3_version if result.runs else ""},
        "settings": {"duration_s": plan.duration, "parallel": plan.parallel, "directions": list(plan.directions),
                     "timeout_s": plan.timeout},
        "interface": result.interface,
        "expected": {"bps": result.expected.bps, "source": result.expected.source,
                     "interface": result.expected.interface},
        "runs": [{**r.to_dict(), "ratio": round(r.throughput_bps / result.expected.bps, 4)} for r in result.runs],
        "connect_rtt": result.connect_rtt.to_dict() if result.connect_rtt else None,
        "verdict": result.verdict.to_dict(),
        "causes": [c.to_dict() for c in result.causes],
        "doctor": {"ran": result.doctor_ran, "problem": result.doctor_problem,
                   "other_findings": result.other_findings},
        "compare": None,
        "exit_code": result.verdict.exit_code,
        "timing": {"total_s": round(result.total_seconds, 3),
                   "iperf3_s": round(sum(r.wall_seconds for r in result.runs), 3)},
    }


def error_document(error: SelftestError) -> dict[str, Any]:
    return {"schema": SCHEMA, "guestcheck_version": __version__,
            "error": {"code": error.code, "kind": error.kind, "message": error.message},
            "runs": [r.to_dict() for r in error.runs], "exit_code": error.code}


def save(path: str, document: dict[str, Any]) -> None:
    try:
        write_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n", make_parents=False,
                     keep_mode=True)
    except OSError as e:
        raise SelftestError(FILE_ERROR, f"cannot save {path}: {e.strerror or e}") from None


def load(path: str) -> dict[str, Any]:
    """A saved selftest document, checked enough to compare against."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise SelftestError(FILE_ERROR, f"cannot read {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SelftestError(FILE_ERROR, f"{path} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise SelftestError(FILE_ERROR, f"{path} is not a saved selftest (schema {schema!r}, expected {SCHEMA!r})")
    if doc.get("error") or not isinstance(doc.get("runs"), list) or not doc["runs"]:
        raise SelftestError(FILE_ERROR, f"{path} holds no finished selftest to compare with")
    return doc


def _by_run(doc: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r.get("direction"), r.get("streams")): r for r in doc.get("runs", []) if isinstance(r, dict)}


def compare(before: dict[str, Any], after: dict[str, Any], path: str) -> dict[str, Any]:
    """Run by run (direction, streams): throughput before and after, and after/before."""
    old, new = _by_run(before), _by_run(after)
    rows = []
    for key in [*new, *(k for k in old if k not in new)]:
        b, a = old.get(key), new.get(key)
        b_bps: Optional[float] = b.get("throughput_bps") if b else None
        a_bps: Optional[float] = a.get("throughput_bps") if a else None
        change = round(a_bps / b_bps, 4) if a_bps is not None and b_bps else None
        rows.append({"direction": key[0], "streams": key[1], "before_bps": b_bps, "after_bps": a_bps,
                     "change": change})
    return {
        "file": path,
        "before_started_at": before.get("started_at"),
        "before_verdict": (before.get("verdict") or {}).get("label"),
        "after_verdict": (after.get("verdict") or {}).get("label"),
        "before_expected_bps": (before.get("expected") or {}).get("bps"),
        "runs": rows,
    }
