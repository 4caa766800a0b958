"""A fake kernel for the tuner's unit tests: /proc/sys files with values, modes and namespace markers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from guestcheck.roots import Roots
from guestcheck.tune.live import ProcSys

REPO = Path(__file__).resolve().parent.parent
PROFILES = REPO / "profiles"

# Debian 12's kernel (6.1) defaults, as a fresh guest shows them
STOCK = {
    "net.core.rmem_max": "212992",
    "net.core.wmem_max": "212992",
    "net.core.somaxconn": "4096",
    "net.core.netdev_max_backlog": "1000",
    "net.core.default_qdisc": "pfifo_fast",
    "net.ipv4.tcp_rmem": "4096\t131072\t6291456",
    "net.ipv4.tcp_wmem": "4096\t16384\t4194304",
    "net.ipv4.tcp_window_scaling": "1",
    "net.ipv4.tcp_moderate_rcvbuf": "1",
    "net.ipv4.tcp_slow_start_after_idle": "1",
    "net.ipv4.tcp_tw_reuse": "2",
    "net.ipv4.tcp_fin_timeout": "60",
    "net.ipv4.tcp_max_syn_backlog": "512",
    "net.ipv4.ip_local_port_range": "32768\t60999",
    "net.ipv4.tcp_congestion_control": "cubic",
    "net.ipv4.tcp_available_congestion_control": "reno cubic",
    "net.ipv4.tcp_mtu_probing": "0",
    "net.ipv4.tcp_notsent_lowat": "4294967295",
    "net.ipv4.tcp_sack": "1",
    "vm.swappiness": "60",
}


class FakeKernel:
    """`Roots.under(tmp)` with a /proc/sys holding `values`; read-only keys get mode 0444."""

    def __init__(self, base: Path, values: Optional[dict[str, str]] = None, *, netns: bool = False,
                 read_only: tuple[str, ...] = ()) -> None:
        self.base = base
        self.roots = Roots.under(str(base))
        self.procsys = ProcSys(self.roots)
        values = dict(STOCK if values is None else values)
        if netns:  # a child network namespace: global keys absent or read-only, as on a real kernel
            values.pop("net.core.netdev_max_backlog", None)
            values.pop("net.core.default_qdisc", None)
            read_only = (*read_only, "net.core.rmem_max", "net.core.wmem_max")
        for key, value in values.items():
            self.set(key, value)
        for key in read_only:
            os.chmod(self.procsys.path(key), 0o444)

    def set(self, key: str, value: str) -> None:
        path = Path(self.procsys.path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")

    def get(self, key: str) -> Optional[str]:
        return self.procsys.read(key)

    def snapshot(self) -> dict[str, str]:
        out = {}
        for root, _dirs, files in os.walk(self.procsys.base):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), self.procsys.base)
                out[rel.replace(os.sep, ".")] = " ".join(Path(root, f).read_text().split())
        return out

    @property
    def persist(self) -> Path:
        return self.base / "etc/sysctl.d/90-guestcheck.conf"

    @property
    def state(self) -> Path:
        return self.base / "var/lib/guestcheck/tune-state.json"


def write_profile(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.conf"
    path.write_text(text)
    return path


def fake_ethtool_writer(base: type) -> type:
    """FakeEthtool (tests/fakemachine.py) that also takes SET calls, like the kernel (refusing `refuse`)."""
    from guestcheck.collect.ethtool import EthtoolError
    from guestcheck.facts import Feature

    class Writer(base):  # type: ignore[misc, valid-type]
        refuse: set = set()
        calls: list = []

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def requested_features(self, ifname):
            return {n: f.on for n, f in self._get(self.feature_sets, ifname).items() if not f.fixed}

        def set_features(self, ifname, wanted):
            feats = self._get(self.feature_sets, ifname)
            self.calls.append(("features", ifname, dict(wanted)))
            for name, on in wanted.items():
                if name not in feats:
                    raise EthtoolError("unsupported", name)
                if not feats[name].fixed and name not in self.refuse:
                    feats[name] = Feature(on, False)

        def set_channels(self, ifname, channels):
            cur = self._get(self.channel_sets, ifname)
            self.calls.append(("channels", ifname, channels))
            if channels.combined > cur.max_combined or channels.rx > cur.max_rx or channels.tx > cur.max_tx:
                raise EthtoolError("unsupported", "over the maximum")
            self.channel_sets[ifname] = channels

        def set_rings(self, ifname, rings):
            cur = self._get(self.ring_sets, ifname)
            self.calls.append(("rings", ifname, rings))
            if rings.rx > cur.rx_max or rings.tx > cur.tx_max:
                raise EthtoolError("unsupported", "over the maximum")
            self.ring_sets[ifname] = rings

        def perm_addr(self, ifname):
            self._get(self.drvinfos, ifname)
            return getattr(self, "perm_addrs", {}).get(ifname)

    return Writer


# --- the tuner's runs as the unit tests call them: one unit through the engine (service.py adds the guards) ----

def apply_profile(profile, roots, *, dry_run=False, procsys=None, sizing=None):
    """A profile through the engine, unguarded (the memory and owners guards are service.py's, tested apart)."""
    from guestcheck.tune import engine
    from guestcheck.tune.units.sysctl import SysctlRequest, SysctlUnit

    return engine.apply(SysctlUnit(), SysctlRequest(profile, sizing), roots, dry_run=dry_run, procsys=procsys)


def apply_offloads(ifname, roots, **kw):
    from guestcheck.tune import service

    return service.apply_offloads(ifname, roots, **kw)


def apply_queues(ifname, roots, vcpus, **kw):
    from guestcheck.tune import service

    return service.apply_queues(ifname, roots, vcpus, **kw)[0]


def apply_rings(ifname, roots, **kw):
    from guestcheck.tune import service

    return service.apply_rings(ifname, roots, **kw)


def apply_rps(ifname, roots, cpus, **kw):
    from guestcheck.tune import service

    return service.apply_rps(ifname, roots, cpus, **kw)[0]


def tune(tmp_path, *args, env=None):
    """`guestcheck tune ARGS` run as a process on the fake root `tmp_path` (this checkout's profiles)."""
    return subprocess.run([sys.executable, "-m", "guestcheck", "tune", *args], capture_output=True, text=True,
                          timeout=60, cwd=str(REPO),
                          env={**os.environ, "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(tmp_path),
                               "GUESTCHECK_PROFILES": str(REPO / "profiles"), **(env or {})})


def one_line_error(out):
    """The one `Error: ...` line of a tune that could not do it (exit 3), never a traceback."""
    assert out.returncode == 3 and "Traceback" not in out.stderr  # README: tune could not do it
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    return lines[0]
