#!/usr/bin/env python3
"""Runs INSIDE the QEMU guest (bench/tune_bdp.py boots it): iperf3 over a netem-shaped veth between two
network namespaces, with the stock kernel defaults, after `guestcheck tune apply throughput`, after
`guestcheck tune apply wan --rate RATE --rtt RTT` (sized to the netem path) and after the same with wan-lossy
(BBR), each in both namespaces. A run may add random loss on the data direction (RATE/DELAY/LOSS).
Prints one line `TUNE-BDP-RESULT <json>` on stdout; the log goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def setup(rate: str, delay: str, shaped: bool, loss: str = "") -> None:
    for name in (SND, RCV):
        run(["ip", "netns", "del", name], check=False)
        run(["ip", "netns", "add", name])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
    run(["ip", "link", "add", "gcb0", "netns", SND, "type", "veth", "peer", "name", "gcb1", "netns", RCV])
    for name, dev, ip in ((SND, "gcb0", SND_IP), (RCV, "gcb1", RCV_IP)):
        run(["ip", "-n", name, "addr", "add", f"{ip}/24", "dev", dev])
        run(["ip", "-n", name, "link", "set", dev, "up"])
        if shaped:  # delay each way; the limit must hold a whole bandwidth-delay product of packets
            lossy = ["loss", loss] if loss and name == SND else []  # random loss on the data direction only
            run(["tc", "-n", name, "qdisc", "add", "dev", dev, "root", "netem", "delay", delay, "rate", rate,
                 "limit", "200000", *lossy])


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


SETUPS = {"default": None, "throughput": "throughput", "sized": "wan", "sized-bbr": "wan-lossy"}


def apply_argv(setup: str, rate: str, delay: str) -> list[str]:
    """The `guestcheck tune apply` arguments of a setup: the static profile, or one sized to the netem path."""
    profile = SETUPS[setup]
    assert profile is not None
    if setup == "throughput":
        return [profile]
    return [profile, "--rate", guestcheck_rate(rate), "--rtt", f"{2 * milliseconds(delay):g}ms"]


def guestcheck_rate(rate: str) -> str:
    """netem's "400mbit" as guestcheck's "400M"."""
    m = re.fullmatch(r"([0-9.]+)([kmg]?)bit", rate.strip().lower())
    if not m:
        raise SystemExit(f"cannot read rate {rate!r} (use e.g. 400mbit)")
    return m.group(1) + {"k": "k", "m": "M", "g": "G", "": ""}[m.group(2)]


def milliseconds(delay: str) -> float:
    text = delay.strip().lower()
    if text.endswith("ms"):
        return float(text[:-2])
    if text.endswith("us"):
        return float(text[:-2]) / 1000
    return float(text.rstrip("s")) * 1000


def tune_apply(args: list[str], force: bool) -> dict:
    """`guestcheck tune apply ARGS` in both namespaces, each with its own --root for /etc and /var/lib."""
    result = {}
    for name in (SND, RCV):
        root = tempfile.mkdtemp(prefix=f"gc-{name}-")
        argv = [sys.executable, "-m", "guestcheck", "tune", "--root", root, "apply", *args]
        out = ns(name, *argv, *(["--force"] if force else []), check=False)
        result[name] = {"rc": out.returncode, "stdout": out.stdout, "stderr": out.stderr.strip()}
        log(f"--- guestcheck tune apply {' '.join(args)} in {name} (rc {out.returncode})\n{out.stdout}{out.stderr}")
    return result


def measure(rate: str, delay: str, loss: str, seconds: int, omit: int) -> dict:
    """Each setup on fresh namespaces (a new namespace starts from the kernel's defaults): the stock defaults,
    the static throughput profile, and wan and wan-lossy sized to the path (--rate, --rtt = 2 x the delay)."""
    res: dict = {"rate": rate, "delay_each_way": delay, "rtt_ms": 2 * milliseconds(delay), "loss": loss,
                 "setups": {}}
    for setup_name in SETUPS:
        setup(rate, delay, shaped=True, loss=loss)
        entry: dict = {}
        if setup_name != "default":
            args = apply_argv(setup_name, rate, delay)
            entry["command"] = "guestcheck tune apply " + " ".join(args)
            applied = tune_apply(args, force=False)
            entry["guard"] = "passed"
            if any(a["rc"] not in (0, 1) for a in applied.values()):
                entry["guard"] = "refused: " + "; ".join(a["stderr"] for a in applied.values() if a["rc"])
                applied = tune_apply(args, force=True)
            entry["apply_rc"] = {n: a["rc"] for n, a in applied.items()}
            entry["apply_output"] = applied[RCV]["stdout"]
        entry["sysctl"] = {n: sysctls(n) for n in (SND, RCV)}
        entry["iperf"] = iperf(seconds, omit)
        log(f"{rate}/{delay} each way{', loss ' + loss if loss else ''}, {setup_name}:", entry["iperf"])
        res["setups"][setup_name] = entry
    return res


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", default="300mbit/100ms",
                   help="comma-separated RATE/DELAY[/LOSS] (delay each way, loss on the data direction), measured "
                        "one after another")
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--omit", type=int, default=5)
    args = p.parse_args()
    os.environ.setdefault("PYTHONPATH", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    runs = [([*r.split("/"), ""])[:3] for r in args.runs.split(",") if r.strip()]
    res: dict = {"kernel": os.uname().release}
    setup("", "0ms", shaped=False)
    res["unshaped"] = iperf(5, 1)
    log("unshaped veth (what this TCG guest can move at all):", res["unshaped"])
    res["runs"] = [measure(rate, delay, loss, args.seconds, args.omit) for rate, delay, loss in runs]
    print("TUNE-BDP-RESULT " + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
