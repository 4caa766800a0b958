#!/usr/bin/env python3
"""The send-buffer verdict of `guestcheck flows` and its loop closed, in the Debian 12 QEMU guest (issue 23).

A sender with tcp_wmem "4096 4096 4096" sends through a tbf (the path's rate, on its egress) to a receiver whose
egress delays by netem (which this host's kernel lacks): on a veth without a real round trip GSO defeats a tiny
send buffer. Each run, on fresh namespaces: the transfer with the kernel's own tcp_wmem (what this TCG guest moves
over the path), then with the tiny buffer (`guestcheck flows` and doctor judge it), then doctor's
FLOW-SNDBUF-LIMITED fix run verbatim in the sender's namespace, and the transfer again (tests/vm/flows_guest.py).
The guest has 1 GiB (MemTotal below throughput's min_ram_mb): the fix, sized to the path, is allowed there.

Targets: before, `limited_by` send-buffer; after the fix, the send-buffer-limited share (tcp_info's, and the
S2 test's verdict on the send queue) below 10 % and iperf3's throughput >= 90 % of the tbf's rate.

    sudo /usr/bin/python3 bench/flows_sndbuf.py [--runs 3] [--rate 100mbit] [--delay 20ms]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from guestcheck.quantities import parse_rate  # noqa: E402
from tests.vm import guest  # noqa: E402

TARGET_SHARE, TARGET_RATE = 0.10, 0.90


def rate_bps(text: str) -> float:
    try:
        return parse_rate(text)
    except ValueError as e:
        raise SystemExit(f"--rate: {e}") from None


def sender(flows: dict) -> Optional[dict]:
    found = [f for f in flows.get("flows", []) if f.get("remote", "").endswith("10.198.0.2")]
    return found[0] if found else None


def queue_state(flow: Optional[dict]) -> str:
    """S2's SKMEMINFO test: the send queue reached sndbuf with the cwnd unused (judge/flows.send_queue_full)."""
    if not flow:
        return "-"
    if "the send queue reached its limit" in flow.get("why", ""):
        return "queue full"
    peak, limit = flow.get("wmem_queued_peak"), flow.get("sndbuf")
    return f"queue {peak}/{limit}"


def pct(x: Optional[float]) -> str:
    return "   -" if x is None else f"{x * 100:4.0f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rate", default="100mbit")
    p.add_argument("--delay", default="20ms")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--memory-mb", type=int, default=1024)
    args = p.parse_args()
    path = rate_bps(args.rate)
    if not guest.bench_ready():
        return 2
    command = (f"python3 tests/vm/flows_guest.py --runs {args.runs} --rate {args.rate} --delay {args.delay} "
               f"--seconds {args.seconds}")
    result = guest.run_in_guest(command, cpus=2, memory_mb=args.memory_mb,
                                timeout=300 + args.runs * 4 * (args.seconds + 40))
    if result.exit_code != 0 or not result.stdout.strip().startswith("{"):
        print(f"guest run failed (exit {result.exit_code}):\n{result.stderr[-3000:]}", file=sys.stderr)
        return 1
    doc = json.loads(result.stdout)
    print(f"guest: Debian 12 under QEMU TCG, 2 vCPU, {args.memory_mb} MiB (MemTotal {doc['mem_total_kib'] // 1024} "
          f"MiB), kernel {doc['kernel']}; path: tbf {args.rate} on the sender, netem {args.delay} on the receiver; "
          f"iperf3 {args.seconds} s after 2 s omitted")
    print("run | defaults Mbit/s | tiny wmem: verdict (rule) sndbuf share, S2 queue test, Mbit/s %path | fix | "
          "after: verdict (rule), sndbuf share, S2 queue test, Mbit/s %path")
    met = []
    for i, run in enumerate(doc["runs"], 1):
        before, after = run.get("before", {}), run.get("after", {})
        b, a = sender(before.get("flows", {})), sender(after.get("flows", {}) if after else {})
        bps_b, bps_a = before.get("iperf_bps"), (after or {}).get("iperf_bps")
        share = a.get("sndbuf_limited_share") if a else None
        print(f"{i:3} | {run['defaults']['iperf_bps'] / 1e6:15.1f} | "
              f"{(b or {}).get('limited_by')} ({(b or {}).get('rule')}), {pct((b or {}).get('sndbuf_limited_share'))} "
              f"%, {queue_state(b)}, {bps_b / 1e6 if bps_b else 0:6.1f} {pct(bps_b / path if bps_b else None)} | "
              f"{run.get('fix') or '(none)'} | "
              f"{(a or {}).get('limited_by')} ({(a or {}).get('rule')}), {pct(share)} %, {queue_state(a)}, "
              f"{bps_a / 1e6 if bps_a else 0:6.1f} {pct(bps_a / path if bps_a else None)}")
        ok = (bool(b) and b.get("limited_by") == "send-buffer" and bool(a) and a.get("limited_by") != "send-buffer"
              and (share or 0) < TARGET_SHARE and bps_a is not None and bps_a >= TARGET_RATE * path)
        met.append(ok)
    first = doc["runs"][0]
    if first.get("fix_out"):
        print("\nwhat the fix printed (run 1):\n" + first["fix_out"].rstrip())
    print(f"\nsummary: {sum(met)} of {len(met)} runs met the targets (send-buffer before; after the fix a share "
          f"< {TARGET_SHARE:.0%}, not send-buffer, >= {TARGET_RATE:.0%} of {args.rate})")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
