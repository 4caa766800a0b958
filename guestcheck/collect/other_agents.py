"""Other agents that manage the settings guestcheck judges and tunes: what runs, and what their files say.

- irqbalance moves IRQ affinity by load, so a hand-set smp_affinity does not stay.
- TuneD applies its active profile's [sysctl] section at start and on `tuned-adm profile`, and puts its
  values back over anyone else's (redhat-performance/tuned #816: its reapply_sysctl overwrote Kubernetes'
  ip_forward). The profile is /etc/tuned/active_profile; its file is PROFILE/tuned.conf under /etc/tuned
  (first) or /usr/lib/tuned (TuneD >= 2.24 also looks in a profiles/ directory in each), with [main] include=
  naming the profiles it builds on: they are applied first, and a later file's key wins.
- Google's guest environment runs google_set_multiqueue at boot (GoogleCloudPlatform/guest-configs
  src/usr/bin/google_set_multiqueue): it sets channels, IRQ affinity and XPS on every NIC.
- NetworkManager records each device it manages in /run/NetworkManager/devices/IFINDEX, a keyfile with
  [device] managed=true|false (NetworkManager src/nm-config.c, DEVICE_RUN_STATE_KEYFILE_KEY_DEVICE_MANAGED).
- cloud-init writes the network configuration, MTU included, to /etc/netplan/50-cloud-init.yaml or
  /etc/network/interfaces.d/50-cloud-init, and writes it again at boot (canonical/cloud-init #3409, #3793).
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from guestcheck.collect.area import Run
from guestcheck.collect.fs import cat, listdir
from guestcheck.collect.processes import running
from guestcheck.facts import OtherAgents
from guestcheck.ini import ini_sections
from guestcheck.names import foreign_name
from guestcheck.quantities import is_digits, maybe_int, parse_int
from guestcheck.regularfile import read_regular
from guestcheck.roots import Roots
from guestcheck.sysctlnames import normalise_key

GOOGLE_AGENTS = ("google_guest_agent", "google_network_daemon", "google_guest_compat_manager")
MAX_FILE = 1 << 20  # a config file larger than this is not one: read no further
MAX_INCLUDE_DEPTH = 10


def _text(path: str) -> Optional[str]:
    try:  # read no further than MAX_FILE, and never wait on a FIFO: doctor runs at boot
        return read_regular(path, MAX_FILE).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def collect_agents(roots: Roots) -> OtherAgents:
    agents = OtherAgents()
    found = running(roots.proc, ["irqbalance", "tuned", "NetworkManager", *GOOGLE_AGENTS])
    if found is not None:
        agents.irqbalance = "irqbalance" in found
        agents.tuned_running = "tuned" in found
        agents.networkmanager_running = "NetworkManager" in found
        agents.google_agents = [a for a in GOOGLE_AGENTS if a in found]
    _tuned(roots, agents)
    script = os.path.join(roots.top, "usr/bin/google_set_multiqueue")
    if os.path.isfile(script):
        agents.google_multiqueue = "/usr/bin/google_set_multiqueue"
    agents.networkmanager_managed = _networkmanager(roots)
    _cloud_init(roots, agents)
    return agents


# --- TuneD ---------------------------------------------------------------------------------------------

def tuned_dirs(roots: Roots) -> List[str]:
    """Where TuneD looks for PROFILE/tuned.conf, first match wins (its consts.py LOAD_DIRECTORIES)."""
    etc, lib = os.path.join(roots.etc, "tuned"), os.path.join(roots.usr_lib, "tuned")
    return [os.path.join(etc, "profiles"), etc, os.path.join(lib, "profiles"), lib]


def parse_ini(text: str) -> Dict[str, Dict[str, str]]:
    """TuneD's tuned.conf and NetworkManager's keyfiles (guestcheck/ini.py): later keys win, as in TuneD;
    runs of blanks in a value are one space."""
    sections: Dict[str, Dict[str, str]] = {}
    for name, pairs in ini_sections(text).items():
        section = sections.setdefault(name.strip(), {})
        section.update((key, " ".join(value.split())) for key, value in pairs)
    return sections


def _profile_file(roots: Roots, name: str) -> Optional[str]:
    for d in tuned_dirs(roots):
        path = os.path.join(d, name, "tuned.conf")
        if os.path.isfile(path):
            return path
    return None


def _tuned(roots: Roots, agents: OtherAgents) -> None:
    text = cat(os.path.join(roots.etc, "tuned/active_profile"))
    if not text:
        return
    names = text.split()
    bad = [n for n in names if not foreign_name(n)]
    if bad:
        agents.notes.append(f"/etc/tuned/active_profile names {len(bad)} profile(s) that are not profile names")
    agents.tuned_profiles = [n for n in names if foreign_name(n)]
    seen: List[str] = []
    for name in agents.tuned_profiles:  # several active profiles merge, the later one winning
        _apply_profile(roots, name, agents, seen, 0)


def _apply_profile(roots: Roots, name: str, agents: OtherAgents, seen: List[str], depth: int) -> None:
    if name in seen:
        return
    if depth > MAX_INCLUDE_DEPTH:
        agents.notes.append(f"TuneD profile {name}: includes nested deeper than {MAX_INCLUDE_DEPTH}, not read")
        return
    seen.append(name)
    path = _profile_file(roots, name)
    text = _text(path) if path else None
    if text is None:
        agents.notes.append(f"TuneD profile {name}: no tuned.conf found in {', '.join(tuned_dirs(roots))}")
        return
    sections = parse_ini(text)
    for include in re.split(r"[,\s]+", sections.get("main", {}).get("include", "")):
        if not include:
            continue
        if foreign_name(include):
            _apply_profile(roots, include, agents, seen, depth + 1)
        else:  # ${f:...} functions pick a profile at run time: TuneD knows which, we do not
            agents.notes.append(f"TuneD profile {name}: include {include[:60]!r} is computed by TuneD, not read")
    for key, value in sections.get("sysctl", {}).items():
        key = normalise_key(key)
        agents.tuned_sysctl[key] = value
        agents.tuned_sysctl_files[key] = path or ""
    for section in sections:
        if section not in ("main", "sysctl") and section not in agents.tuned_sections:
            agents.tuned_sections.append(section)


# --- NetworkManager ----------------------------------------------------------------------------------

def _networkmanager(roots: Roots) -> Dict[str, bool]:
    """iface -> managed, from NetworkManager's per-device run state (keyed by ifindex)."""
    state_dir = os.path.join(roots.run, "NetworkManager/devices")
    entries = [e for e in listdir(state_dir) if is_digits(e)]
    if not entries:
        return {}
    names: Dict[str, str] = {}
    for iface in listdir(os.path.join(roots.sys, "class/net")):
        index = cat(os.path.join(roots.sys, "class/net", iface, "ifindex"))
        if index:
            names[index] = iface
    out: Dict[str, bool] = {}
    for index in entries:
        if index not in names:
            continue  # a device gone since NetworkManager wrote its state
        device = parse_ini(_text(os.path.join(state_dir, index)) or "").get("device", {})
        managed = device.get("managed", "").lower()
        if managed in ("true", "false", "1", "0", "yes", "no"):
            out[names[index]] = managed in ("true", "1", "yes")
    return out


# --- cloud-init ------------------------------------------------------------------------------------------

NETPLAN_KINDS = {"ethernets", "bonds", "bridges", "vlans", "wifis", "tunnels", "vrfs", "modems"}


def parse_netplan_mtu(text: str) -> Dict[str, int]:
    """{id or set-name: mtu} from a netplan file, read by indentation (netplan's YAML as cloud-init writes it):
    the key two levels under `network:` and one under a device kind is the device's id."""
    stack: List[Tuple[int, str]] = []
    mtus: Dict[str, int] = {}
    set_names: Dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("-"):
            continue
        indent = len(line) - len(line.lstrip())
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        key, value = key.strip().strip("'\""), value.strip().strip("'\"")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        device = next((stack[i + 1][1] for i in range(len(stack) - 1) if stack[i][1] in NETPLAN_KINDS), None)
        if device is not None and len(stack) >= 3:
            mtu = maybe_int(value, max_digits=6) if key == "mtu" else None
            if mtu is not None:
                mtus[device] = mtu
            elif key == "set-name" and foreign_name(value):
                set_names[device] = value
        stack.append((indent, key))
    return {set_names.get(d, d): m for d, m in mtus.items() if foreign_name(set_names.get(d, d))}


def parse_eni_mtu(text: str) -> Dict[str, int]:
    """{iface: mtu} from an ifupdown file: `mtu N` under `iface NAME ...`."""
    out: Dict[str, int] = {}
    iface = None
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "iface" and len(words) > 1:
            iface = words[1] if foreign_name(words[1]) else None
        elif words[0] in ("auto", "allow-hotplug", "source", "mapping"):
            iface = None
        elif words[0] == "mtu" and iface and len(words) > 1 and maybe_int(words[1], max_digits=6) is not None:
            out[iface] = parse_int(words[1])
    return out


def _cloud_init(roots: Roots, agents: OtherAgents) -> None:
    for rel, parse in (("netplan/50-cloud-init.yaml", parse_netplan_mtu),
                       ("network/interfaces.d/50-cloud-init", parse_eni_mtu),
                       ("network/interfaces.d/50-cloud-init.cfg", parse_eni_mtu)):
        text = _text(os.path.join(roots.etc, rel))
        if text is None:
            continue
        agents.cloud_init_file = f"/etc/{rel}"
        agents.cloud_init_mtu = parse(text)
        return


AREA = "agents"


def collect(run: Run) -> OtherAgents:
    return collect_agents(run.roots)
