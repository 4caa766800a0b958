"""Which device a tuned NIC is, beyond its name: names move (udev renames, `ip link set name`, a new veth
that takes a freed name), and a rollback or verify must never write one device's originals to another.

The journal keeps, with each tuned interface's name, its identity (state.NicIdentity):
- the permanent hardware address (ETHTOOL_GPERMADDR, what `ethtool -P` reads) when the device has one: it
  holds across renames and reboots;
- else (veth and most software devices: all zeros, "not set") its current address, its ifindex and the boot id
  (/proc/sys/kernel/random/boot_id): valid for that boot only. After a reboot such a device is the one the
  journal's .link file matched at boot (its [Match] line), if guestcheck persisted anything for it.
Journals written by 1ab7483 hold no identity: their NICs are found by name, as then.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, List, Optional

from guestcheck.collect.ethtool import EthtoolError
from guestcheck.collect.fs import cat, cat_int, listdir
from guestcheck.names import valid_ifname
from guestcheck.roots import Roots
from guestcheck.tune import TuneError
from guestcheck.tune import linkfile as lf
from guestcheck.tune.journal import LinkRecord, NicIdentity, State


def _net(roots: Roots, ifname: str) -> str:
    return os.path.join(roots.sys, "class/net", ifname)


def exists(roots: Roots, ifname: str) -> bool:
    return valid_ifname(ifname) and os.path.isdir(_net(roots, ifname))


def perm_addr(et: Any, ifname: str) -> Optional[str]:
    """The permanent address (collect/ethtool.py's ETHTOOL_GPERMADDR), None when the device has none."""
    perm = None
    with contextlib.suppress(EthtoolError, AttributeError, OSError):
        perm = et.perm_addr(ifname)
    if not perm or perm.strip("0:") == "" or not lf.HW_ADDRESS.fullmatch(perm):
        return None
    return perm.lower()


def identify(roots: Roots, et: Any, ifname: str, boot: Optional[str]) -> NicIdentity:
    """The device named `ifname` now, as the journal records it."""
    perm = perm_addr(et, ifname)
    if perm:
        return NicIdentity(perm_mac=perm)
    mac = (cat(os.path.join(_net(roots, ifname), "address")) or "").lower()
    ifindex = cat_int(os.path.join(_net(roots, ifname), "ifindex"))
    return NicIdentity(mac=mac if lf.HW_ADDRESS.fullmatch(mac) else None,
                       ifindex=ifindex if ifindex and ifindex > 0 else None, boot_id=boot)


def same_device(tuned: NicIdentity, now: NicIdentity, roots: Roots, name_now: str,
                record: Optional[LinkRecord]) -> bool:
    """Whether `now` (the device called `name_now`) is the device the journal recorded as `tuned`."""
    if tuned.perm_mac:
        return now.perm_mac == tuned.perm_mac
    if now.perm_mac:
        return False
    if tuned.boot_id == now.boot_id:  # (None for both: a machine without a boot id, as a reboot is unknown)
        return (now.ifindex, now.mac) == (tuned.ifindex, tuned.mac)
    # another boot: address and ifindex were that boot's; the device is the one our .link file matched at boot
    if record is None or not record.match:
        return False
    dev = lf.device(roots, name_now, None)
    return lf.matches([tuple(line.split("=", 1)) for line in record.match], dev) is True  # type: ignore[misc]


@dataclass
class Located:
    """Where the tuned device is now (`name`, None when it is not here), and a different device that has
    taken its old name (`other`, described), if one has."""

    tuned: str
    name: Optional[str]
    other: Optional[str] = None
    identity: Optional[NicIdentity] = None

    @property
    def renamed(self) -> bool:
        return self.name is not None and self.name != self.tuned

    def refusal(self) -> str:
        """The one line that refuses to write the device that took the name."""
        ident = self.identity.describe() if self.identity else "unknown"
        return (f"{self.tuned} is now a different device ({self.other}), not the one guestcheck tuned "
                f"({ident}), which is not here")


def locate(roots: Roots, et: Any, state: State, ifname: str, boot: Optional[str]) -> Located:
    """Find the device the journal's entry `ifname` was tuned on: under that name, or renamed."""
    tuned = state.nics.get(ifname)
    if tuned is None:  # a 1ab7483 journal: by name, as it was then
        return Located(ifname, ifname if exists(roots, ifname) else None)
    record = state.links.get(ifname)
    out = Located(ifname, None, identity=tuned)
    if exists(roots, ifname):
        now = identify(roots, et, ifname, boot)
        if same_device(tuned, now, roots, ifname, record):
            out.name = ifname
            return out
        out.other = f"{now.describe()}"
    for candidate in sorted(listdir(os.path.join(roots.sys, "class/net"))):
        if candidate == ifname or not exists(roots, candidate):
            continue
        if same_device(tuned, identify(roots, et, candidate, boot), roots, candidate, record):
            out.name = candidate
            return out
    return out


def locate_all(roots: Roots, et: Any, state: State, names: List[str], boot: Optional[str]) -> List[Located]:
    return [locate(roots, et, state, name, boot) for name in names]


def check_same(roots: Roots, et: Any, journal: State, ifname: str, boot: Optional[str]) -> None:
    """Before `tune offloads/queues/rings/rps IFACE` adds to the journal: refuse (TuneError) when the journal holds
    originals for that name from another device, or holds this device's originals under another name; else
    record (or renew, after a reboot) the device's identity under `ifname`."""
    now = identify(roots, et, ifname, boot)
    held = ifname in journal.links or any(ifname in slot for slot in (journal.features, journal.channels,
                                                                         journal.rings, journal.rps))
    tuned = journal.nics.get(ifname)
    if held and tuned is not None and not same_device(tuned, now, roots, ifname, journal.links.get(ifname)):
        raise TuneError(f"the journal holds the original settings of another device that was called {ifname} "
                        f"({tuned.describe()}); {ifname} is now {now.describe()}: run `guestcheck tune rollback` "
                        "first; nothing was changed")
    for other, ident in journal.nics.items():
        if other != ifname and same_device(ident, now, roots, ifname, journal.links.get(other)):
            raise TuneError(f"{ifname} is the device guestcheck tuned as {other} (renamed since): run "
                            "`guestcheck tune rollback` first; nothing was changed")
    if held and tuned is None:
        return  # a 1ab7483 journal's entry: its device is unknown, it stays found by name
    journal.nics[ifname] = now


def forget_unused(journal: State) -> None:
    """Drop the identity of names the journal no longer holds anything for."""
    held = set(journal.links) | set(journal.features) | set(journal.channels) | set(journal.rings) | set(journal.rps)
    journal.nics = {name: ident for name, ident in journal.nics.items() if name in held}
