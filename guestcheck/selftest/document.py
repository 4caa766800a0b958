"""The guestcheck.selftest/1 document (schema in README.md), written atomically, read back to compare.

`--save FILE` before tuning and `--compare FILE` after show what the tuning changed, run by run.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from guestcheck import __version__
from guestcheck.atomicfile import write_output
from guestcheck.quantities import MAX_RATE
from guestcheck.regularfile import TooLarge, read_regular
from guestcheck.selftest.errors import FILE_ERROR, SelftestError
from guestcheck.selftest.iperf3 import DOWNLOAD, MAX_MEASURED_BPS, MAX_STREAMS, UPLOAD
from guestcheck.selftest.latency import to_dict as latency_section
from guestcheck.selftest.session import Result
from guestcheck.selftest.untrusted import Damaged, as_dict, number, parse, printable, text, whole
from guestcheck.selftest.verdict import LABELS

SCHEMA = "guestcheck.selftest/1"
MAX_FILE_BYTES = 4 * 2**20  # a saved selftest is a few kilobytes
MAX_RUNS = 64  # directions x stream counts: 4 today


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
        "latency": latency_section(result.latency) if result.latency is not None else None,
        "exit_code": result.exit_code,
        "timing": {"total_s": round(result.total_seconds, 3),
                   "iperf3_s": round(sum(r.wall_seconds for r in result.runs), 3)},
    }


def error_document(error: SelftestError) -> dict[str, Any]:
    return {"schema": SCHEMA, "guestcheck_version": __version__,
            "error": {"code": error.code, "kind": error.kind, "message": error.message},
            "runs": [r.to_dict() for r in error.runs], "exit_code": error.code}


def save(path: str, document: dict[str, Any]) -> None:
    try:
        write_output(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    except OSError as e:
        raise SelftestError(FILE_ERROR, f"cannot save {path}: {e.strerror or e}") from None


def load(path: str) -> dict[str, Any]:
    """A saved selftest document, checked before any measurement so a damaged file never costs one.

    The file is outside input: read bounded (no FIFO, no device, at most MAX_FILE_BYTES), and only the
    fields compare() and the report use are kept, each with its type and range checked."""
    where = printable(path)
    data = _read_bounded(path, where)
    try:
        doc = parse(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SelftestError(FILE_ERROR, f"{where} is not UTF-8 text, so not a saved selftest") from None
    except Damaged as e:
        raise SelftestError(FILE_ERROR, f"{where} is {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        schema = text(doc.get("schema"), 64) if isinstance(doc, dict) else None
        raise SelftestError(FILE_ERROR, f"{where} is not a saved selftest (schema {schema!r}, expected {SCHEMA!r})")
    if doc.get("error") or not isinstance(doc.get("runs"), list) or not doc["runs"]:
        raise SelftestError(FILE_ERROR, f"{where} holds no finished selftest to compare with")
    return _checked(doc, where)


def _read_bounded(path: str, where: str) -> bytes:
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except OSError as e:
        raise SelftestError(FILE_ERROR, f"cannot read {where}: {e.strerror or e}") from None
    except TooLarge:
        raise SelftestError(FILE_ERROR, f"{where} is larger than {MAX_FILE_BYTES} bytes: not a saved selftest") \
            from None
    except ValueError as e:
        raise SelftestError(FILE_ERROR, f"cannot read {where}: {e}") from None


def _checked(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields compare() reads, type- and range-checked; FILE_ERROR naming the first bad one."""
    def bad(field: str) -> SelftestError:
        return SelftestError(FILE_ERROR, f"{where} is damaged: {field} is missing or not valid")

    runs = []
    for index, run in enumerate(doc["runs"][:MAX_RUNS + 1]):
        run = as_dict(run)
        direction, streams = run.get("direction"), whole(run.get("streams"), 1, MAX_STREAMS)
        bps = number(run.get("throughput_bps"), 0, MAX_MEASURED_BPS)
        if direction not in (UPLOAD, DOWNLOAD) or streams is None or bps is None or index >= MAX_RUNS:
            raise bad(f"runs[{index}]")
        runs.append({"direction": direction, "streams": streams, "throughput_bps": bps})
    verdict, expected, started_at = doc.get("verdict"), doc.get("expected"), doc.get("started_at")
    if not isinstance(verdict, dict) or verdict.get("label") not in LABELS.values():
        raise bad("verdict.label")
    if not isinstance(expected, dict) or number(expected.get("bps"), 0, MAX_RATE) is None:
        raise bad("expected.bps")
    if started_at is not None and not isinstance(started_at, str):
        raise bad("started_at")
    return {"schema": SCHEMA, "started_at": text(started_at, 64), "verdict": {"label": verdict["label"]},
            "expected": {"bps": number(expected.get("bps"), 0, MAX_RATE)}, "runs": runs}


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
