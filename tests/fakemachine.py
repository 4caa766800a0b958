"""Fake machines for unit tests: sysfs/procfs trees and ethtool answers rebuilt from real captures.

`from_snapshot()` turns a capture in ../shared/reference/snapshots/ into a directory tree with the same
files, symlinks and values the real machine showed, and its ioctl answers in ROOT/ethtool/IFACE.json, the
files the collectors read under a fake root (guestcheck.collect.ethtool.EthtoolReplay). `FakeMachine` can
also be built by hand for drivers no capture covers; `m.ethtool` holds the answers until `collect()` writes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from guestcheck.collect.ethtool import REPLAY_DIR, DrvInfo, EthtoolError, replay_document
from guestcheck.collect.machine import collect_facts
from guestcheck.facts import Channels, Facts, Feature, Rings
from guestcheck.roots import Roots

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(os.environ.get("GUESTCHECK_SNAPSHOTS", REPO.parent / "shared/reference/snapshots"))
# .ci/run sets this: there the captures must be beside the repo, and a test built on them fails instead of
# quietly skipping. A package build from a source tarball has no ../shared and leaves it unset.
REQUIRE_SNAPSHOTS = os.environ.get("GUESTCHECK_REQUIRE_SNAPSHOTS") == "1"


class SnapshotsMissing(RuntimeError):
    """The reference captures are required here (GUESTCHECK_REQUIRE_SNAPSHOTS=1) but absent."""


def snapshot_names() -> list[str]:
    names = sorted(p.stem for p in SNAPSHOTS.glob("*.json"))
    if not names and REQUIRE_SNAPSHOTS:
        raise SnapshotsMissing(f"no reference snapshots in {SNAPSHOTS}, and GUESTCHECK_REQUIRE_SNAPSHOTS=1 says "
                               "they must be there (clone ../shared beside the repo, or set GUESTCHECK_SNAPSHOTS)")
    return names


def load_snapshot(name: str) -> dict[str, Any]:
    """A capture from shared/reference; the test is skipped where the captures are not beside the repo
    (a package build from a source tarball), and fails where they are required."""
    path = SNAPSHOTS / f"{name}.json"
    if not path.is_file():
        if REQUIRE_SNAPSHOTS:
            pytest.fail(f"reference snapshot {path} not found, and GUESTCHECK_REQUIRE_SNAPSHOTS=1 says it must be")
        pytest.skip(f"reference snapshot {path} not found (set GUESTCHECK_SNAPSHOTS)")
    return json.loads(path.read_text())


@dataclass
class FakeEthtool:
    """Replays ETHTOOL_GDRVINFO / GFEATURES / GCHANNELS answers; missing means "unsupported"."""

    drvinfos: dict[str, DrvInfo] = field(default_factory=dict)
    feature_sets: dict[str, dict[str, Feature]] = field(default_factory=dict)
    channel_sets: dict[str, Channels] = field(default_factory=dict)
    ring_sets: dict[str, Rings] = field(default_factory=dict)
    stat_sets: dict[str, dict[str, int]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)

    def _get(self, table: dict, name: str) -> Any:
        if name in self.gone:
            raise EthtoolError("no-device")
        if name not in table:
            raise EthtoolError("unsupported")
        return table[name]

    def drvinfo(self, ifname: str) -> DrvInfo:
        return self._get(self.drvinfos, ifname)

    def features(self, ifname: str) -> dict[str, Feature]:
        return dict(self._get(self.feature_sets, ifname))

    def channels(self, ifname: str) -> Channels:
        return self._get(self.channel_sets, ifname)

    def rings(self, ifname: str) -> Rings:
        return self._get(self.ring_sets, ifname)

    def stats(self, ifname: str) -> dict[str, int]:
        return dict(self._get(self.stat_sets, ifname))

    def documents(self) -> dict[str, dict[str, Any]]:
        """ROOT/ethtool/IFACE.json for each interface this knows: its answers, "unsupported" where it has none."""
        out = {}
        keys = ("drvinfo", "features", "channels", "rings", "stats")
        tables = dict(zip(keys, (self.drvinfos, self.feature_sets, self.channel_sets, self.ring_sets,
                                 self.stat_sets)))
        for name in set().union(*tables.values()) | self.gone:
            errors = {k: "no-device" if name in self.gone else "unsupported"
                      for k in keys if name in self.gone or name not in tables[k]}
            out[name] = replay_document(self.drvinfos.get(name), self.feature_sets.get(name),
                                        self.channel_sets.get(name), errors, rings=self.ring_sets.get(name),
                                        stats=self.stat_sets.get(name))
        return out


class FakeMachine:
    """A directory laid out like /, with helpers to write sysfs-like files and symlinks."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.roots = Roots.under(str(base))
        self.ethtool = FakeEthtool()
        self.write("proc/self/ns/.keep", "")
        self.symlink("proc/self/ns/pid", "pid:[4026531836]")
        self.symlink("proc/self/ns/user", "user:[4026531837]")
        self.write("proc/sys/kernel/osrelease", "6.1.0-test-amd64\n")
        self.write("proc/sys/kernel/hostname", "fake\n")
        self.write("proc/1/cgroup", "0::/\n")
        self.set_cpus(1)

    def collect(self, **kw: Any) -> Facts:
        """Facts of this fake machine, collected by the real collectors (no CPUID, no sampling wait), the ioctl
        answers read from the tree as under GUESTCHECK_ROOT. A test that put its own source in `m.ethtool`
        (an interface vanishing mid-read) gets that source called instead."""
        kw.setdefault("sample_seconds", 0)
        if type(self.ethtool) is FakeEthtool:
            self.write_ethtool()
            return collect_facts(self.roots, cpuid_reader=lambda: None, **kw)
        return collect_facts(self.roots, ethtool=self.ethtool, cpuid_reader=lambda: None, **kw)

    def write_ethtool(self) -> None:
        """The ioctl answers as files next to sysfs: ROOT/ethtool/IFACE.json."""
        import shutil

        directory = self.base / REPLAY_DIR
        shutil.rmtree(directory, ignore_errors=True)
        for name, doc in self.ethtool.documents().items():
            self.write(f"{REPLAY_DIR}/{name}.json", json.dumps(doc, indent=1))

    def write(self, rel: str, text: str) -> Path:
        path = self.base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))  # a name's undecodable bytes, as the kernel has them
        return path

    def symlink(self, rel: str, target: str) -> None:
        path = self.base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(target, path)

    def set_cpus(self, n: int, hypervisor_flag: bool = True) -> None:
        self.write("sys/devices/system/cpu/online", "0" if n == 1 else f"0-{n - 1}")
        flags = "fpu vme sse2" + (" hypervisor" if hypervisor_flag else "")
        self.write("proc/cpuinfo", "".join(f"processor\t: {i}\nflags\t\t: {flags}\n\n" for i in range(n)))

    def set_dmi(self, **fields: str) -> None:
        for k, v in fields.items():
            self.write(f"sys/class/dmi/id/{k}", v + "\n")

    def add_nic(
        self,
        name: str,
        *,
        driver: Optional[str] = None,
        bus: Optional[str] = "pci",
        pci_id: Optional[str] = None,
        pci_subsystem_id: Optional[str] = None,
        virtio_parent_pci: Optional[str] = None,
        physfn: bool = False,
        link_type: int = 1,
        mtu: int = 1500,
        operstate: str = "up",
        speed: Optional[int] = None,
        duplex: Optional[str] = None,
        mac: str = "52:54:00:12:34:56",
        queues: int = 1,
        ifindex: int = 2,
        flags: int = 0x1003,
        carrier: int = 1,
        marker: Optional[str] = None,
        uevent_devtype: Optional[str] = None,
        drvinfo_driver: Optional[str] = None,
        features: Optional[dict[str, Feature]] = None,
        channels: Optional[Channels] = None,
        rings: Optional[Rings] = None,
        stats: Optional[dict[str, int]] = None,
        statistics: Optional[dict[str, int]] = None,
    ) -> None:
        net = f"sys/class/net/{name}"
        for attr, value in {"ifindex": ifindex, "type": link_type, "mtu": mtu, "operstate": operstate,
                            "address": mac, "flags": hex(flags), "carrier": carrier}.items():
            self.write(f"{net}/{attr}", f"{value}\n")
        if speed is not None:
            self.write(f"{net}/speed", f"{speed}\n")
        if duplex is not None:
            self.write(f"{net}/duplex", f"{duplex}\n")
        for i in range(queues):
            self.write(f"{net}/queues/rx-{i}/rps_cpus", "0\n")
            self.write(f"{net}/queues/tx-{i}/xps_cpus", "0\n")
        uevent = f"INTERFACE={name}\nIFINDEX={ifindex}\n" + (f"DEVTYPE={uevent_devtype}\n" if uevent_devtype else "")
        self.write(f"{net}/uevent", uevent)
        if marker:
            self.write(f"{net}/{marker}/.keep", "")
        if bus is not None:
            dev = "sys/devices/pci0000:00/0000:00:03.0"
            if bus == "virtio":
                pci = dev
                dev = f"{dev}/virtio0"
                self.symlink(f"{pci}/subsystem", str(self.base / "sys/bus/pci"))
                if virtio_parent_pci:
                    v, d = virtio_parent_pci.split(":")
                    self.write(f"{pci}/vendor", f"0x{v}\n")
                    self.write(f"{pci}/device", f"0x{d}\n")
            dev = f"{dev}-{name}" if bus != "virtio" else dev
            self.write(f"{dev}/.keep", "")
            self.symlink(f"{dev}/subsystem", str(self.base / f"sys/bus/{bus}"))
            if driver:
                self.write(f"sys/bus/{bus}/drivers/{driver}/.keep", "")
                self.symlink(f"{dev}/driver", str(self.base / f"sys/bus/{bus}/drivers/{driver}"))
            if pci_id:
                v, d = pci_id.split(":")
                self.write(f"{dev}/vendor", f"0x{v}\n")
                self.write(f"{dev}/device", f"0x{d}\n")
            if pci_subsystem_id:
                v, d = pci_subsystem_id.split(":")
                self.write(f"{dev}/subsystem_vendor", f"0x{v}\n")
                self.write(f"{dev}/subsystem_device", f"0x{d}\n")
            if physfn:
                self.symlink(f"{dev}/physfn", str(self.base / "sys/devices/pci0000:00/0000:00:02.0"))
            self.symlink(f"{net}/device", str(self.base / dev))
        ethtool_driver = drvinfo_driver or driver
        if ethtool_driver:
            self.ethtool.drvinfos[name] = DrvInfo(ethtool_driver, "1.0", "", "")
        if features is not None:
            self.ethtool.feature_sets[name] = features
        if channels is not None:
            self.ethtool.channel_sets[name] = channels
        if rings is not None:
            self.ethtool.ring_sets[name] = rings
        if stats is not None:
            self.ethtool.stat_sets[name] = stats
        if statistics is not None:
            self.set_statistics(name, statistics)

    def set_statistics(self, name: str, values: dict[str, int]) -> None:
        """/sys/class/net/NAME/statistics/COUNTER files (the kernel's drop and error counters)."""
        for counter, value in values.items():
            self.write(f"sys/class/net/{name}/statistics/{counter}", f"{value}\n")


def _features(raw: Any) -> Optional[dict[str, Feature]]:
    if not isinstance(raw, dict) or "error" in raw:
        return None
    return {k: Feature(bool(v["on"]), bool(v["fixed"]), *(v.get(w) for w in ("requested", "available",
                                                                           "never_changed")))
            for k, v in raw.items() if k}


# virtio device id -> the driver that binds it (include/uapi/linux/virtio_ids.h)
VIRTIO_DRIVERS = {1: "virtio_net", 2: "virtio_blk", 3: "virtio_console", 4: "virtio_rng", 5: "virtio_balloon",
                  0x13: "vmw_vsock_virtio_transport", 0x18: "virtio_mem"}


def add_virtio_device(m: FakeMachine, name: str, device_id: int, driver: Optional[str]) -> None:
    """A device on the virtio bus as the kernel links it: bus entry -> device, device/driver -> driver."""
    dev = f"sys/devices/virtio-fake/{name}"
    m.write(f"{dev}/device", f"0x{device_id:04x}\n")
    m.symlink(f"sys/bus/virtio/devices/{name}", str(m.base / dev))
    if driver:
        m.write(f"sys/bus/virtio/drivers/{driver}/bind", "")
        m.symlink(f"{dev}/driver", str(m.base / f"sys/bus/virtio/drivers/{driver}"))
        m.symlink(f"sys/bus/virtio/drivers/{driver}/{name}", str(m.base / dev))


def _write_memory_captures(m: FakeMachine, snap: dict[str, Any]) -> None:
    """What the memory and steal collectors read: virtio devices and drivers, /proc/stat, beancounters, cgroup.

    The captures list device ids and registered drivers but not the binding; a driver that is registered binds
    its device id, as it did on those machines (virtio_balloon was in use where `balloon` is true).
    """
    drivers = set(snap.get("virtio_drivers") or [])
    for name, device in (snap.get("virtio_devices") or {}).items():
        driver = VIRTIO_DRIVERS.get(int(device, 16))
        add_virtio_device(m, name, int(device, 16), driver if driver in drivers else None)
    for driver in drivers:
        m.write(f"sys/bus/virtio/drivers/{driver}/bind", "")
    if snap.get("proc_stat_cpu"):
        m.write("proc/stat", "\n".join(snap["proc_stat_cpu"]) + "\n")
    if isinstance(snap.get("user_beancounters"), str):
        m.write("proc/user_beancounters", snap["user_beancounters"])
    if isinstance(snap.get("cgroup_memory_max"), str):
        m.write("sys/fs/cgroup/cgroup.controllers", "memory\n")
        m.write("sys/fs/cgroup/memory.max", snap["cgroup_memory_max"] + "\n")
    if snap.get("modules"):
        m.write("proc/modules", "".join(f"{mod} 16384 0 - Live 0x0\n" for mod in snap["modules"]))


def from_snapshot(name: str, base: Path) -> FakeMachine:
    """Rebuild a captured machine as a tree under `base`."""
    snap = load_snapshot(name)
    m = FakeMachine(base)
    m.set_cpus(int(snap.get("nproc") or 1), bool(snap.get("cpu_hypervisor_flag")))
    m.write("proc/sys/kernel/osrelease", snap["uname"][2] + "\n")
    m.set_dmi(**{k: v for k, v in (snap.get("dmi") or {}).items() if v})
    m.write("proc/1/cgroup", (snap.get("proc1_cgroup") or "0::/") + "\n")
    m.write("proc/meminfo", snap.get("meminfo") or "")
    m.write("proc/net/softnet_stat", snap.get("softnet_stat") or "")
    _write_memory_captures(m, snap)
    for ifindex, nic in enumerate(snap["nics"], start=1):
        drv = nic.get("ethtool_drvinfo") or {}
        ch = nic.get("ethtool_channels") or {}
        channels = None
        if ch and "error" not in ch:
            channels = Channels(ch["max_rx"], ch["max_tx"], ch["max_other"], ch["max_combined"],
                                ch["rx"], ch["tx"], ch["other"], ch["combined"])
        subsystem = nic.get("subsystem")
        vendor, device = nic.get("pci_vendor"), nic.get("pci_device")
        sub_v, sub_d = nic.get("pci_subsystem_vendor"), nic.get("pci_subsystem_device")
        strip = lambda x: x[2:] if x else None  # noqa: E731
        is_bridge = nic.get("is_bridge")
        m.add_nic(
            nic["name"],
            driver=nic.get("driver_link"),
            bus=subsystem if nic.get("device_path") else None,
            pci_id=f"{strip(vendor)}:{strip(device)}" if subsystem == "pci" and vendor else None,
            pci_subsystem_id=f"{strip(sub_v)}:{strip(sub_d)}" if sub_v else None,
            link_type=int(nic["type"]),
            mtu=int(nic["mtu"]),
            operstate=nic["operstate"],
            speed=int(nic["speed"]) if nic.get("speed") not in (None, "") else None,
            duplex=nic.get("duplex"),
            mac=nic["address"],
            queues=sum(q.startswith("rx-") for q in nic.get("queues", [])) or 1,
            ifindex=ifindex,
            flags=0x1003 if nic["operstate"] != "down" else 0x1002,
            marker="bridge" if is_bridge else None,
            drvinfo_driver=drv.get("driver") if "error" not in drv else None,
            features=_features(nic.get("ethtool_features")),
            channels=channels,
        )
        if "error" in drv:
            m.ethtool.drvinfos.pop(nic["name"], None)
    return m
