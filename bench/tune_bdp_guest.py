#!/usr/bin/env python3
"""Runs INSIDE the QEMU guest (bench/tune_bdp.py boots it): iperf3 over a netem-shaped veth between two
network namespaces, with the stock kernel defaults, then after `guestcheck tune apply throughput` in both
namespaces. Prints one line `TUNE-BDP-RESULT <json>` on stdout; the log goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

SND, RCV = "gcbsnd", "gcbrcv"
SND_IP, RCV_IP = "10.203.0.1", "10.203.0.2"
KEYS = ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.core.rmem_max", "net.ipv4.tcp_congestion_control")


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def run(argv: list[str], check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}")
    return out


def ns(name: str, *argv: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return run(["ip", "netns", "exec", name, *argv], check=check, timeout=timeout)


def setup(rate: str, delay: str, shaped: bool) -> None:
    for name in (SND, RCV):
        run(["ip", "netns", "del", name], check=False)
        run(["ip", "netns", "add", name])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
    run(["ip", "link", "add", "gcb0", "netns", SND, "type", "veth", "peer", "name", "gcb1", "netns", RCV])
    for name, dev, ip in ((SND, "gcb0", SND_IP), (RCV, "gcb1", RCV_IP)):
        run(["ip", "-n", name, "addr", "add", f"{ip}/24", "dev", dev])
        run(["ip", "-n", name, "link", "set", dev, "up"])
        if shaped:  # delay each way; the limit must hold a whole bandwidth-delay product of packets
            run(["tc", "-n", name, "qdisc", "add", "dev", dev, "root", "netem", "delay", delay, "rate", rate,
                 "limit", "200000"])


def sysctls(name: str) -> dict[str, str]:
    return {k: " ".join(ns(name, "sysctl", "-n", k, check=False).stdout.split()) for k in KEYS}


def iperf(seconds: int, omit: int) -> dict:
    for name in (SND, RCV):
        ns(name, "ip", "tcp_metrics", "flush", "all", check=False)  # no ssthresh remembered from the last run
    server = subprocess.Popen(["ip", "netns", "exec", RCV, "iperf3", "-s", "-1", "-B", RCV_IP],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if ns(RCV, "ss", "-ltn", check=False).stdout.count(":5201"):
                break
            subprocess.run(["sleep", "0.2"], check=False)
        # -Z: sendfile() spares the emulated CPU one copy per byte, so the guest's ceiling is the path's
        out = ns(SND, "iperf3", "-c", RCV_IP, "-Z", "-t", str(seconds), "-O", str(omit), "-J",
                 timeout=seconds + omit + 120)
    finally:
        server.wait(timeout=60)
    doc = json.loads(out.stdout)
    end = doc["end"]
    sender = (end.get("streams") or [{}])[0].get("sender", {})
    return {"received_mbps": round(end["sum_received"]["bits_per_second"] / 1e6, 1),
            "mean_rtt_ms": round(sender.get("mean_rtt", 0) / 1000, 1),
            "max_cwnd_bytes": sender.get("max_snd_cwnd"),
            "sent_mbps": round(end["sum_sent"]["bits_per_second"] / 1e6, 1),
            "retransmits": end["sum_sent"].get("retransmits"),
            "seconds": seconds, "omitted_seconds": omit}


def tune_apply(force: bool) -> dict:
    """`guestcheck tune apply throughput` in both namespaces, each with its own --root for /etc and /var/lib."""
    result = {}
    for name in (SND, RCV):
        root = tempfile.mkdtemp(prefix=f"gc-{name}-")
        argv = [sys.executable, "-m", "guestcheck", "tune", "--root", root, "apply", "throughput"]
        out = ns(name, *argv, *(["--force"] if force else []), check=False)
        result[name] = {"rc": out.returncode, "stdout": out.stdout, "stderr": out.stderr.strip()}
        log(f"--- guestcheck tune apply throughput in {name} (rc {out.returncode})\n{out.stdout}{out.stderr}")
    return result


def measure(rate: str, delay: str, seconds: int, omit: int) -> dict:
    """Default then tuned, on fresh namespaces (a new namespace starts from the kernel's defaults)."""
    res: dict = {"rate": rate}
    setup(rate, delay, shaped=True)
    res["qdisc"] = ns(SND, "tc", "qdisc", "show", "dev", "gcb0").stdout.strip()
    res["sysctl_default"] = {n: sysctls(n) for n in (SND, RCV)}
    res["default"] = iperf(seconds, omit)
    log(f"{rate}: stock defaults:", res["default"])
    applied = tune_apply(force=False)
    res["guard"] = "passed"
    if any(a["rc"] != 0 for a in applied.values()):
        res["guard"] = "refused: " + "; ".join(a["stderr"] for a in applied.values() if a["rc"])
        applied = tune_apply(force=True)
    res["apply_rc"] = {n: a["rc"] for n, a in applied.items()}
    res["apply_output"] = applied[RCV]["stdout"]
    res["sysctl_tuned"] = {n: sysctls(n) for n in (SND, RCV)}
    res["tuned"] = iperf(seconds, omit)
    log(f"{rate}: after tune apply throughput:", res["tuned"])
    return res


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rates", default="300mbit", help="comma-separated netem rates, measured one after another")
    p.add_argument("--delay", default="100ms")
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--omit", type=int, default=5)
    args = p.parse_args()
    os.environ.setdefault("PYTHONPATH", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    res: dict = {"delay_each_way": args.delay, "kernel": os.uname().release}
    setup("", args.delay, shaped=False)
    res["unshaped"] = iperf(5, 1)
    log("unshaped veth (what this TCG guest can move at all):", res["unshaped"])
    res["runs"] = [measure(rate, args.delay, args.seconds, args.omit) for rate in args.rates.split(",")]
    print("TUNE-BDP-RESULT " + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
