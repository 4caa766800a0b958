#!/usr/bin/env python3
"""The loss ledger against six losses made on purpose: packets dropped (counted independently) against packets
the ledger counted, and the layer it named.

Each scenario (tests/ledger_scenarios.py) builds fresh network namespaces, starts `guestcheck doctor --json
--sample S` in the namespace whose counters should move, waits until doctor's window is open, induces the loss
(a few seconds of traffic between addresses inside the namespaces) and lets the window close. The row is the
ledger's row for the scenario's counter; its `rise` is compared with the induced count.
Target (issue 21): in each scenario the ledger names the right layer and counts the induced drops within 5 %.

Also printed: the since-boot alternative, the row's `total` (fresh namespaces start at 0, so it should equal the
rise), and the same counter as `tc -s qdisc` / `nstat -az` read it at the end, which checks the scenario itself.
Until the ledger is merged the counted column says "no ledger section".

    sudo /usr/bin/python3 bench/ledger_scenarios.py [--runs 3] [--only qdisc-drops,udp-rcvbuf]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from guestcheck.text import escape_control  # noqa: E402
from tests.ledger_scenarios import SCENARIOS, Measured, Scenario, ledger_row, measure  # noqa: E402
from tests.netns import can_make_netns  # noqa: E402

TOLERANCE = 0.05
HEADER = ("scenario", "dropped (induced)", "counted (rise)", "ratio", "layer named", "within 5 %",
          "row total", "tc/nstat total")


def figures(s: Scenario, m: Measured) -> tuple[List[str], Optional[bool]]:
    """One table line, and whether the target was met (None when there is no ledger to judge)."""
    induced = m.induced.count
    common = [s.name, str(induced)]
    tools = str(m.kernel_total)
    if m.error:
        return [*common, escape_control(m.error), "-", "-", "-", "-", tools], False
    if m.doc is None or "ledger" not in m.doc:
        return [*common, "no ledger section", "-", "-", "-", "-", tools], None
    row = ledger_row(s, m.doc)
    if row is None:
        return [*common, f"no {s.counter} row", "-", "-", "no", "-", tools], False
    rise, total = row.get("rise"), row.get("total")
    named = escape_control(f"{row.get('layer')}/{row.get('counter')} {row.get('detail') or ''} "
                           f"-> {row.get('finding')}").replace("  ", " ")
    ok_layer = row.get("layer") == s.layer and row.get("finding") == s.finding
    if not isinstance(rise, int):
        return [*common, f"rise {rise!r}", "-", named, "no", str(total), tools], False
    ratio = rise / induced if induced else float("nan")
    within = induced > 0 and abs(rise - induced) <= TOLERANCE * induced
    met = within and ok_layer and m.inside
    verdict = "yes" if met else ("no" + ("" if within else " (count)") + ("" if ok_layer else " (layer)")
                                 + ("" if m.inside else " (window)"))
    return [*common, str(rise), f"{ratio:.3f}", named, verdict, str(total), tools], met


def table(lines: List[List[str]]) -> str:
    rows = [list(HEADER), *lines]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    out = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario, each on fresh namespaces")
    parser.add_argument("--only", default="", help="comma-separated scenario names: " + ", ".join(SCENARIOS))
    args = parser.parse_args()
    reason = can_make_netns()
    if reason:
        print(f"bench/ledger_scenarios.py: {reason}", file=sys.stderr)
        return 2
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or args.runs < 1:
        print(f"bench/ledger_scenarios.py: unknown scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)})"
              if unknown else "bench/ledger_scenarios.py: --runs must be 1 or more", file=sys.stderr)
        return 2
    lines: List[List[str]] = []
    notes: List[str] = []
    verdicts: List[Optional[bool]] = []
    for name in names:
        for run in range(args.runs):
            with SCENARIOS[name]() as s:
                m = measure(s)
            line, met = figures(s, m)
            lines.append(line)
            verdicts.append(met)
            print(" | ".join(line), file=sys.stderr, flush=True)  # progress: a run takes several seconds
            if run == 0:
                notes.append(f"{s.name}: {s.title}; doctor in the {s.where}'s namespace expects "
                             f"{s.layer}/{s.counter} -> {s.finding}; induced = {m.induced.method}")
            extra = ", ".join(f"{k} {v}" for k, v in {**m.induced.figures, **m.induced.elsewhere}.items())
            notes.append(f"  run {run + 1}: {extra}; window {m.window:g} s"
                         + ("" if m.inside else " (the traffic outlasted the window)"))
    print(table(lines))
    print()
    print("\n".join(notes))
    judged = [v for v in verdicts if v is not None]
    if not judged:
        print("\nno ledger section in doctor --json yet: counted column empty (the induced counts stand alone)")
        return 0
    print(f"\n{sum(judged)} of {len(judged)} runs within {TOLERANCE:.0%} with the right layer")
    return 0 if all(judged) and len(judged) == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
