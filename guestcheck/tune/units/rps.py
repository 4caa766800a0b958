"""The RPS unit: `tune rps IFACE [--cpus LIST]` spreads the protocol work of each receive queue over CPUs
(Receive Packet Steering), the guest's own fix for a single-queue NIC (doctor's SOFTIRQ-NO-RPS, and
QUEUES-SINGLE-VIRTIO where the host cannot add queues).

The setting is each receive queue's /sys/class/net/IFACE/queues/rx-N/rps_cpus (a CPU mask, 0 = off), not an
ethtool one: the unit reads and writes those files under the tuner's /sys root, and keeps the ethtool writer
for what every NIC unit needs (the device's identity). systemd's .link files have no RPS setting, so it is
always persisted in the interface's udev rule (ATTR{queues/rx-N/rps_cpus}="MASK", see linkfile.rule_text).
The default is every online CPU: that is what doctor's finding asks for, and a mask over every CPU stays
right when irqbalance moves the queue's interrupt.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Dict, List, Optional, Set, Tuple

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.collect.fs import cat, listdir
from guestcheck.cpus import cpu_bitmap, cpu_list, mask_cpus, parse_cpu_list
from guestcheck.roots import Roots
from guestcheck.text import escape_control
from guestcheck.tune import TuneError
from guestcheck.tune import linkfile as lf
from guestcheck.tune.journal import State
from guestcheck.tune.units.nic import NicRequest, NicResult, NicUnit, Planned, Values

MAX_QUEUES = 4096  # receive queues read per device: more than any NIC has


class QueueFiles:
    """The ethtool writer (identity: perm_addr) with each receive queue's rps_cpus file under `roots.sys`.
    Errors are EthtoolErrors, as the shared NIC code expects from a unit's read and write."""

    def __init__(self, roots: Roots, et: Any = None) -> None:
        self.roots = roots
        self._et = et

    def __getattr__(self, name: str) -> Any:
        if self._et is None:
            raise AttributeError(name)
        return getattr(self._et, name)

    def __enter__(self) -> QueueFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _queues_dir(self, ifname: str) -> str:
        return os.path.join(self.roots.sys, "class/net", ifname, "queues")

    def rx_queues(self, ifname: str) -> List[str]:
        """rx-0, rx-1, ... that have an rps_cpus file, in queue order."""
        if not os.path.isdir(os.path.join(self.roots.sys, "class/net", ifname)):
            raise EthtoolError("no-device", f"{ifname} is not here")
        names = [q for q in listdir(self._queues_dir(ifname)) if lf.RX_QUEUE.fullmatch(q)]
        names = [q for q in names if os.path.exists(os.path.join(self._queues_dir(ifname), q, "rps_cpus"))]
        return sorted(names, key=lambda q: int(q[3:]))[:MAX_QUEUES]

    def rps(self, ifname: str) -> Dict[str, str]:
        """Each receive queue's mask, in one form (cpu_bitmap: the kernel pads it to its CPU count)."""
        out = {}
        for queue in self.rx_queues(ifname):
            raw = cat(os.path.join(self._queues_dir(ifname), queue, "rps_cpus"))
            if raw is None or not lf.RPS_MASK.fullmatch(raw.strip()):
                raise EthtoolError("unreadable", f"{ifname} {queue}/rps_cpus reads {escape_control(repr(raw))}")
            out[queue] = cpu_bitmap(mask_cpus(raw.strip()))
        return out

    def set_rps(self, ifname: str, masks: Dict[str, str], *, gone_ok: bool = False) -> None:
        """Write each queue's mask (never creating a file: the queues are the kernel's). `gone_ok`: a queue that
        is gone since (fewer channels now) is skipped, as rollback wants."""
        if not os.path.isdir(os.path.join(self.roots.sys, "class/net", ifname)):
            raise EthtoolError("no-device", f"{ifname} is not here")
        for queue, mask in sorted(masks.items()):
            if not lf.RX_QUEUE.fullmatch(queue) or not lf.RPS_MASK.fullmatch(mask):
                raise EthtoolError("refused", f"{escape_control(repr(queue))} = {escape_control(repr(mask))} is "
                                              "not a receive queue and a CPU mask")
            path = os.path.join(self._queues_dir(ifname), queue, "rps_cpus")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                if gone_ok:
                    continue
                raise EthtoolError("no-device", f"{ifname} has no queue {queue}") from None
            except OSError as e:
                raise EthtoolError("refused", f"{queue}/rps_cpus: {e.strerror}") from None
            try:
                os.write(fd, (mask + "\n").encode("ascii"))
            except OSError as e:
                why = "a CPU the kernel cannot steer to (offline or isolated)" if e.errno == errno.EINVAL else \
                    e.strerror
                raise EthtoolError("refused", f"{queue}/rps_cpus = {mask}: {why}") from None
            finally:
                os.close(fd)


class RpsUnit(NicUnit):
    name = "rps"
    label = "rps"
    what = "RPS masks"

    def access(self, roots: Roots, et: Any) -> Any:
        return et if isinstance(et, QueueFiles) else QueueFiles(roots, et)

    def read(self, et: Any, ifname: str) -> Values:
        return et.rps(ifname)

    def write(self, et: Any, ifname: str, values: Values) -> None:
        et.set_rps(ifname, values)

    def restore(self, et: Any, ifname: str, original: Values) -> None:
        et.set_rps(ifname, original, gone_ok=True)

    def originals(self, state: State) -> Dict[str, Values]:
        return state.rps

    def show(self, value: Any) -> str:
        cpus = mask_cpus(value)
        return f"{value} (CPUs {cpu_ranges(cpus)})" if cpus else f"{value} (off)"

    def link_settings(self, applied: Values) -> Tuple[Dict[str, str], Dict[str, str]]:
        return {}, self.rule_args(applied)  # no .link setting: always the udev rule

    def rule_args(self, applied: Values) -> Dict[str, str]:
        return {f"R:{q}": m for q, m in applied.items()}

    def plan_values(self, et: Any, ifname: str, request: NicRequest, result: NicResult) -> Optional[Planned]:
        """Every receive queue steers to `request.args["cpus"]`; every queue is written, the unchanged ones too:
        the rule sets them all at boot, when each is 0 again."""
        cpus = request.args["cpus"]
        try:
            before = et.rps(ifname)
        except EthtoolError as e:
            raise TuneError(f"cannot read the RPS masks of {ifname}: {e}") from None
        if not before:
            raise TuneError(f"{ifname} has no receive queue with an rps_cpus file (a kernel built without "
                            "CONFIG_RPS?)")
        mask = cpu_bitmap(cpus)
        target = {q: mask for q in before}
        for q, now in before.items():
            if now != mask:
                result.planned[q] = f"{self.show(now)} -> {self.show(mask)}"

        def report(after: Values) -> None:
            result.done = [f"{q}: {self.show(before[q])} -> {self.show(after[q])}" for q in before
                           if before[q] != mask]
            kept = sorted(q for q in target if mask_cpus(after.get(q)) != cpus)
            if kept:
                result.notes.append(f"the kernel steers {', '.join(kept)} to fewer CPUs than asked for (it leaves "
                                    "out CPUs that are isolated or went offline)")

        return Planned(target, report) if result.planned else None


def cpu_ranges(cpus: Set[int]) -> str:
    """{0, 1, 2, 3, 5} -> "0-3,5" (the kernel's list form, for people)."""
    out: List[str] = []
    for cpu in sorted(cpus):
        if out and cpu == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{cpu}"
        else:
            out.append(str(cpu))
    return ",".join(out)


def online_cpus(roots: Roots) -> Set[int]:
    cpus = cpu_list(cat(os.path.join(roots.sys, "devices/system/cpu/online")))
    if not cpus:
        raise TuneError(f"cannot read the online CPUs ({roots.sys}/devices/system/cpu/online)")
    return cpus


def chosen_cpus(roots: Roots, asked: Optional[str]) -> Set[int]:
    """--cpus LIST (ASCII digits and ranges, every CPU online), or every online CPU; TuneError otherwise."""
    online = online_cpus(roots)
    if asked is None:
        return online
    try:
        cpus = parse_cpu_list(asked)
    except ValueError as e:
        raise TuneError(f"--cpus {escape_control(repr(asked))}: {escape_control(str(e))}") from None
    outside = cpus - online
    if outside:
        raise TuneError(f"--cpus {escape_control(asked)}: CPU {cpu_ranges(outside)} "
                        f"{'is' if len(outside) == 1 else 'are'} not online (online: {cpu_ranges(online)})")
    return cpus
