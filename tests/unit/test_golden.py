"""Golden outputs: doctor, facts, tune diff and rollback --dry-run on fake roots, compared byte for byte.

Issue 20 (the "one house" refactor) moves most of guestcheck's modules while keeping every public contract. These
transcripts were recorded BEFORE it (at f9d99c8, branch int19) by running the commands as subprocesses the way a
user does (GUESTCHECK_ROOT names the fake machine, as in test_cli and test_tune_cli), so any change in what a
command prints, its exit code, its stderr, or the tune journal it writes shows up here as a diff. Only the fields in
NORMALISED, which differ from one run to the next, are replaced before comparing.

To record them again after an intended change:

    GUESTCHECK_REGEN_GOLDEN=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/unit/test_golden.py

Every test then FAILS, saying it rewrote its file (so a regeneration never passes silently): review the change with
`git diff tests/data/golden`, commit it, and run the tests again without the variable.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import pytest

from guestcheck.facts import Channels, Feature, Rings
from tests.fakemachine import REPO, FakeMachine, add_virtio_device, from_snapshot, snapshot_names
from tests.tune_fake import FakeKernel

GOLDEN = REPO / "tests/data/golden"
DATA = REPO / "tests/data"
REGEN = os.environ.get("GUESTCHECK_REGEN_GOLDEN") == "1"
ROOT_MARK = "<ROOT>"

# What varies between two runs of the same command on the same tree, and so is replaced before comparing:
# (name, pattern, replacement, why). Nothing else is touched.
NORMALISED: Tuple[Tuple[str, str, str, str], ...] = (
    ("root", "(the fake root's directory)", ROOT_MARK,
     "each run builds its fake machine in a new temporary directory (always /tmp/gcgold-XXXXXXXX, 21 characters, "
     "so no line's layout depends on it); collectors print the paths they read"),
    ("collected_at", r'("collected_at": ?")[^"]*(")', r"\g<1><TIME>\g<2>",
     "facts/1's collection time, the wall clock at the run (to the second)"),
    ("guestcheck_version", r'("guestcheck_version": ?")[^"]*(")', r"\g<1><VERSION>\g<2>",
     "the package version: a release bump must not need new goldens"),
)


def normalise(text: str, root: Optional[str]) -> str:
    """The transcript with the run-dependent fields of NORMALISED replaced."""
    for name, pattern, replacement, _why in NORMALISED:
        if name == "root":  # a literal path, not a pattern
            text = text.replace(root, replacement) if root else text
        else:
            text = re.sub(pattern, replacement, text)
    return text


@dataclass
class Step:
    """One command of a case, and the files whose content after it belongs in the transcript."""

    args: Tuple[str, ...]
    files: Tuple[str, ...] = ()  # relative to the root


@dataclass
class Case:
    name: str
    build: Callable[[Path], None]  # makes the fake machine under the given root
    steps: Tuple[Step, ...]


def run(root: Path, args: Sequence[str]) -> subprocess.CompletedProcess:
    """`python3 -m guestcheck ARGS` on the fake machine, with a fixed environment (nothing of the caller's shell
    can change the output: no colour variables, no terminal, the shipped profiles)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "GUESTCHECK_ROOT": str(root),
           "GUESTCHECK_PROFILES": str(REPO / "profiles"), "LC_ALL": "C.UTF-8", "HOME": str(root)}
    return subprocess.run([sys.executable, "-m", "guestcheck", *args], capture_output=True, timeout=120, env=env,
                          cwd=str(REPO))


def transcript(case: Case, root: Path) -> str:
    """Each step's command line, exit code, stdout, stderr and chosen files, in order."""
    out: List[str] = []
    for step in case.steps:
        done = run(root, step.args)
        out.append(f"$ guestcheck {' '.join(step.args)}\nexit {done.returncode}\n--- stdout\n")
        out.append(done.stdout.decode("utf-8", "backslashreplace"))
        out.append("\n--- stderr\n" + done.stderr.decode("utf-8", "backslashreplace"))
        for rel in step.files:
            path = root / rel
            body = path.read_bytes().decode("utf-8", "backslashreplace") if path.is_file() else "(absent)"
            out.append(f"\n--- file {rel}\n{body}")
        out.append("\n--- end\n")
    return normalise("".join(out), str(root))


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A fake root whose path has the same length every run (see NORMALISED)."""
    base = Path(tempfile.mkdtemp(prefix="gcgold-", dir="/tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- the machines ---------------------------------------------------------------------------------------------

MEMINFO_8G = ("MemTotal:       8388608 kB\nMemFree:        4194304 kB\nMemAvailable:   4194304 kB\n"
              "SwapTotal:      0 kB\nSwapFree:       0 kB\nCommitLimit:    4194304 kB\nCommitted_AS:   1048576 kB\n"
              "HugePages_Total:       0\n")
ON = Feature(True, False)
OFF = Feature(False, False)


def snapshot(name: str) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        from_snapshot(name, root).write_ethtool()
    return build


def bridged_machine(root: Path) -> None:
    """What no capture covers: a bridge, a VLAN, three tunnels, an emulated e1000 under a VXLAN whose MTU does not
    fit, a multiqueue virtio NIC with one queue in use, an inflated virtio balloon and the stock sysctls."""
    FakeKernel(root)
    m = FakeMachine(root)
    m.set_cpus(4)
    m.set_dmi(sys_vendor="QEMU", product_name="Standard PC (Q35 + ICH9, 2009)", bios_vendor="SeaBIOS")
    m.write("proc/meminfo", MEMINFO_8G)
    m.write("proc/sys/vm/overcommit_memory", "0\n")
    m.write("proc/sys/vm/overcommit_ratio", "50\n")
    m.add_nic("eth0", driver="e1000", pci_id="8086:100e", pci_subsystem_id="1af4:1100", mtu=1500, speed=1000,
              duplex="full", ifindex=2, features={"tx-tcp-segmentation": ON, "tx-generic-segmentation": ON,
                                                  "rx-gro": ON, "tx-checksum-ip-generic": ON,
                                                  "tx-scatter-gather": ON})
    m.add_nic("ens4", driver="virtio_net", bus="virtio", virtio_parent_pci="1af4:1000", ifindex=3,
              mac="52:54:00:12:34:57", features={"tx-tcp-segmentation": OFF, "tx-generic-segmentation": ON,
                                                  "rx-gro": OFF, "tx-checksum-ip-generic": ON,
                                                  "tx-scatter-gather": ON},
              channels=Channels(0, 0, 0, 4, 0, 0, 0, 1), rings=Rings(1024, 0, 0, 1024, 256, 0, 0, 256))
    m.add_nic("br0", bus=None, marker="bridge", ifindex=4, mac="52:54:00:12:34:58")
    m.write("sys/class/net/br0/bridge/stp_state", "1\n")
    m.write("sys/class/net/br0/bridge/forward_delay", "1500\n")
    m.write("sys/class/net/br0/brif/ens4/state", "3\n")
    m.write("sys/class/net/br0/brif/tap0/state", "1\n")
    m.add_nic("ens4.100", bus=None, uevent_devtype="vlan", ifindex=5, mac="52:54:00:12:34:57")
    m.symlink("sys/class/net/ens4.100/lower_ens4", str(root / "sys/class/net/ens4"))
    m.write("proc/net/vlan/config", "VLAN Dev name\t | VLAN ID\nName-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\n"
                                    "ens4.100       | 100  | ens4\n")
    m.add_nic("vx0", bus=None, uevent_devtype="vxlan", mtu=1500, ifindex=6, mac="52:54:00:12:34:59")
    m.symlink("sys/class/net/vx0/lower_eth0", str(root / "sys/class/net/eth0"))
    m.add_nic("tunl1", bus=None, link_type=768, mtu=1380, ifindex=7, flags=0x1091)
    m.add_nic("wg0", bus=None, uevent_devtype="wireguard", link_type=65534, mtu=1420, ifindex=8)
    add_virtio_device(m, "virtio3", 5, "virtio_balloon")
    m.write("sys/devices/virtio-fake/virtio3/features", "0100" + "0" * 60 + "\n")
    m.write("sys/kernel/debug/virtio-balloon", "InflatedTotal: 524288 kB\nInflatedFree: 0 kB\n")
    m.write_ethtool()


def kernel(values: Optional[dict] = None, *, netns: bool = False) -> Callable[[Path], None]:
    """tests/tune_fake.py's kernel (Debian 12's stock sysctls) with 8 GiB of RAM, guaranteed."""
    def build(root: Path) -> None:
        FakeKernel(root, values, netns=netns)
        (root / "proc/meminfo").write_text(MEMINFO_8G)
    return build


def journal_1ab7483_apply(root: Path) -> None:
    """The machine as 1ab7483 left it after `tune apply many-connections` (tests/data/README.md)."""
    journal = json.loads((DATA / "journal-1ab7483-apply.json").read_text())
    values = {key: pair["applied"] for key, pair in journal["sysctl"].items()}
    kernel({**_stock(), **values})(root)
    persist = root / "etc/sysctl.d/90-guestcheck.conf"
    persist.parent.mkdir(parents=True)
    persist.write_bytes((DATA / "journal-1ab7483-apply.applied-90-guestcheck.conf").read_bytes())
    os.chmod(persist, 0o640)
    _journal(root, "journal-1ab7483-apply.json")


def journal_1ab7483_nic(root: Path) -> None:
    """1ab7483's `tune offloads gc0` + `tune queues gc0` journal and its .link and rule files; the NIC is gone."""
    kernel()(root)
    for rel in ("etc/systemd/network/50-guestcheck-gc0.link", "etc/udev/rules.d/90-guestcheck-gc0.rules"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((DATA / f"journal-1ab7483-nic.applied-{Path(rel).name}").read_bytes())
    _journal(root, "journal-1ab7483-nic.json")


def _stock() -> dict:
    from tests.tune_fake import STOCK

    return dict(STOCK)


def _journal(root: Path, name: str) -> None:
    state = root / "var/lib/guestcheck/tune-state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_bytes((DATA / name).read_bytes())


def tuned_virtio(root: Path) -> None:
    """The QEMU virtio capture with the stock sysctls: today's `tune apply` and `tune rps` make the journal."""
    snapshot("qemu-virtio")(root)
    kernel()(root)


def empty(root: Path) -> None:
    """Nothing: `doctor --facts` judges the file and must not read the machine."""


# -- the cases ------------------------------------------------------------------------------------------------

STATE = "var/lib/guestcheck/tune-state.json"
DOCTOR_JSON = Step(("doctor", "--json", "--sample", "0"))
FACTS_JSON = Step(("facts", "--json", "--sample", "0"))
DOCTOR_HUMAN = Step(("doctor", "--sample", "0"))
DOCTOR_VERBOSE = Step(("doctor", "--sample", "0", "-v"))


def _cases() -> List[Case]:
    cases = []
    for name in snapshot_names():
        steps = [DOCTOR_JSON, FACTS_JSON, DOCTOR_HUMAN] + ([DOCTOR_VERBOSE] if name == "qemu-virtio" else [])
        cases.append(Case(f"snapshot-{name}", snapshot(name), tuple(steps)))
    cases.append(Case("bridged", bridged_machine, (DOCTOR_JSON, FACTS_JSON, DOCTOR_HUMAN, DOCTOR_VERBOSE)))
    for facts_file in ("tests/data/facts-0.1.0-1096a5b.json", "tests/data/facts-1ab7483-bridged.json",
                       "tests/data/facts-1ab7483-qemu-virtio_tap_mq.json"):
        path = facts_file  # relative to the checkout (the commands run there), so no checkout path is recorded
        stem = Path(facts_file).stem
        cases.append(Case(f"saved-{stem}", empty, (Step(("doctor", "--facts", path, "--json")),
                                                   Step(("doctor", "--facts", path, "-v")))))
    cases += [
        Case("tune-diff-throughput", kernel(), (Step(("tune", "diff", "throughput")),)),
        Case("tune-diff-wan-sized", kernel(), (Step(("tune", "diff", "wan", "--rate", "1G", "--rtt", "50ms")),)),
        Case("tune-diff-latency-netns", kernel(netns=True), (Step(("tune", "diff", "latency")),)),
        Case("tune-rollback-1ab7483-apply", journal_1ab7483_apply, (Step(("tune", "rollback", "--dry-run")),
                                                                    Step(("tune", "verify")))),
        Case("tune-rollback-1ab7483-nic", journal_1ab7483_nic, (Step(("tune", "rollback", "--dry-run")),)),
        Case("tune-apply-rollback", tuned_virtio, (
            Step(("tune", "apply", "wan", "--rate", "1G", "--rtt", "50ms"),
                 (STATE, "etc/sysctl.d/90-guestcheck.conf")),
            Step(("tune", "rps", "ens3"), (STATE, "etc/udev/rules.d/90-guestcheck-ens3.rules")),
            Step(("tune", "verify"),),
            Step(("tune", "rollback", "--dry-run"), (STATE,)),
        )),
    ]
    return cases


CASES = _cases()


def _expanded(text: str) -> List[str]:
    """The transcript for a reader: a line that is a JSON document is shown indented, one field per line."""
    out: List[str] = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out += json.dumps(json.loads(line), indent=1, ensure_ascii=False).splitlines()
                continue
            except ValueError:
                pass
        out.append(line)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="recorded as root: facts/1's is_root and doctor's hints depend on it")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_output_is_the_recorded_one(case: Case, short_root: Path) -> None:
    case.build(short_root)
    got = transcript(case, short_root)
    golden = GOLDEN / f"{case.name}.txt"
    if REGEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(got.encode("utf-8"))
        pytest.fail(f"GUESTCHECK_REGEN_GOLDEN=1: rewrote {golden.relative_to(REPO)}; review it with git diff, "
                    "then run again without the variable")
    if not golden.is_file():
        pytest.fail(f"no golden {golden.relative_to(REPO)}: record it with GUESTCHECK_REGEN_GOLDEN=1")
    want = golden.read_bytes().decode("utf-8")
    if got != want:
        diff = "\n".join(difflib.unified_diff(_expanded(want), _expanded(got), f"golden/{golden.name}", "this run",
                                              lineterm="", n=2))
        pytest.fail(f"{case.name}: output differs from {golden.relative_to(REPO)} (JSON lines shown indented; "
                    f"normalised: {', '.join(n[0] for n in NORMALISED)}):\n{diff}", pytrace=False)


def test_every_golden_file_has_its_case() -> None:
    """A renamed or dropped case leaves no stale golden behind."""
    names = {f"{c.name}.txt" for c in CASES}
    if not snapshot_names():
        names |= {p.name for p in GOLDEN.glob("snapshot-*.txt")}
    assert sorted(p.name for p in GOLDEN.glob("*.txt") if p.name not in names) == []


def test_normalisation_touches_only_what_varies() -> None:
    text = ('{"schema":"guestcheck.facts/1","guestcheck_version":"0.1.0","collected_at":"2026-12-07T13:14:30+00:00",'
            '"detail":"/tmp/gcgold-abcdefgh/sys/class/dmi/id/sys_vendor","sample_seconds":0}')
    assert normalise(text, "/tmp/gcgold-abcdefgh") == (
        '{"schema":"guestcheck.facts/1","guestcheck_version":"<VERSION>","collected_at":"<TIME>",'
        '"detail":"<ROOT>/sys/class/dmi/id/sys_vendor","sample_seconds":0}')
