"""Every command, on a fake machine whose interface name, interface alias, hwdb model and container name hold
ESC, BEL, OSC (`ESC ] ... BEL`, which sets a terminal's title or its clipboard), CSI and C1 controls.

The property, for each command as a user runs it (a process, no terminal): an exit code from the README's
tables, no traceback, and no control character a terminal would obey on stdout or stderr: no byte in
\\x00-\\x08, \\x0b-\\x1f or \\x7f, no C1 code point. The name still shows, escaped, so the property is not
met by leaving it out. Each example runs about thirty processes, so the CI profile runs a few examples
(derandomized, tests/conftest.py); the release profile runs fifty times as many.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guestcheck.facts import Channels, Feature, Rings
from guestcheck.text import escape_control
from tests.fakemachine import FakeMachine
from tests.fuzz.fake_iperf3 import FakeIperf3, Reply
from tests.fuzz.harness import REPO, assert_clean_exit, examples, run_guestcheck
from tests.tune_fake import PROFILES, FakeKernel
from tests.unit.test_output import raw_controls
from tests.unit.test_selftest_cli import _selftest_via
from tests.unit.test_selftest_iperf3 import UPLOAD_2_STREAMS

# pieces a hostile name is made of: terminal controls, and plain text around them
CONTROLS = ["\x1b", "\x07", "\x1b]0;owned\x07", "\x1b]52;c;aGk=\x07", "\x1b[2J", "\x1b[8m", "\x1b[31m", "\x9b",
            "\x9b2J", "\x9d", "\x9d0;t\x07", "\x90", "\x9f", "\x7f", "\x08", "\x01", "\x1f", "\u202e"]
PLAIN = ["a", "0", "-", "_", ".", "\u00e9"]
# an interface name as the kernel takes it: at most 15 bytes, no '/', ':' or white space (the control
# characters above are not white space to the kernel)
iface_name = st.lists(st.sampled_from(CONTROLS + PLAIN), min_size=1, max_size=6).map("".join).map(
    lambda s: ("n" + s).encode()[:15].decode("utf-8", "ignore")).filter(lambda s: any(c in s for c in "\x1b\x07\x9b"
                                                                                       "\x9d\x90\x9f\x7f\x08\x01\x1f"))
# an alias, a model, a container name: a line of a file, anything but a newline or NUL
free_text = st.lists(st.sampled_from(CONTROLS + PLAIN + ["\r", "\t", " ", "\x0b", "\x0c"]), min_size=1,
                     max_size=12).map("".join)


def hostile_machine(base: Path, nic: str, alias: str, model: str, container: str) -> FakeMachine:
    """A fake machine every command can run on: /proc/sys for the tuner, an emulated NIC with offloads off,
    small rings and one of four queues in use (findings and tune plans about it), udev's hwdb names, an
    ifalias, a container marker, and first boot's and refresh's settings (a metrics directory, the Ansible fact)."""
    FakeKernel(base)
    m = FakeMachine(base)
    m.set_cpus(4)
    m.add_nic(nic, driver="e1000", pci_id="8086:100e", speed=1000, ifindex=2, queues=1,
              features={"rx-gro": Feature(False, False), "tx-tcp-segmentation": Feature(False, False),
                        "tx-generic-segmentation": Feature(False, False)},
              channels=Channels(max_combined=4, combined=1), rings=Rings(rx=256, tx=256, rx_max=4096, tx_max=4096),
              statistics={"rx_dropped": 5, "rx_bytes": 1000, "tx_bytes": 1000, "rx_packets": 10, "tx_packets": 10})
    m.add_nic("lo", bus=None, link_type=772, ifindex=1, mac="00:00:00:00:00:00")
    m.write(f"sys/class/net/{nic}/ifalias", alias + "\n")
    m.write("run/udev/data/n2", f"E:ID_MODEL_FROM_DATABASE={model}\nE:ID_VENDOR_FROM_DATABASE={alias}\n")
    m.write("run/systemd/container", f"c{container}\n")
    m.write("proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n")
    m.write("var/lib/prometheus/node-exporter/.keep", "")
    m.write("etc/ansible/facts.d/.keep", "")
    m.write("etc/guestcheck/guestcheck.conf", f"[firstboot]\nprofile = p{container}\n"
                                              f"bogus = {alias}\n[fleet]\nansible_facts = {model}\n")
    m.write_ethtool()
    return m


def commands(nic: str, container: str, facts_file: Path) -> list[list[str]]:
    """Every command and the error paths that echo what they were given."""
    argv_safe = container.replace("\x00", "")
    return [
        ["doctor", "--sample", "0"], ["doctor", "--sample", "0", "-v"], ["doctor", "--sample", "0", "--json"],
        ["doctor", "--sample", "0", "--format", "prometheus"], ["doctor", "--sample", "0", "-v", "--only", "*"],
        ["doctor", "--facts", str(facts_file), "-v"], ["doctor", "--only", argv_safe],
        ["facts", "--sample", "0"],
        ["explain", "NIC-EMULATED"], ["explain", argv_safe],
        ["tune", "list"], ["tune", "show", "throughput"], ["tune", "show", argv_safe],
        ["tune", "diff", "throughput"], ["tune", "recommend"],
        ["tune", "apply", "throughput", "--dry-run"], ["tune", "apply", "throughput"],  # the memory guard refuses
        ["tune", "apply", "many-connections"], ["tune", "verify"], ["tune", "verify", "throughput"],
        ["tune", "rollback", "--dry-run"],
        ["tune", "offloads", nic, "--dry-run"], ["tune", "queues", nic, "--dry-run"],
        ["tune", "rings", nic, "--dry-run"], ["tune", "offloads", f"x{nic}", "--dry-run"],
        ["tune", "rollback"],
        ["watch", "--count", "1", "--interval", "0.1", "--events", "none"],
        ["watch", nic, "--count", "1", "--interval", "0.1", "--events", "none"],
        ["watch", f"x{nic}", "--count", "1"],
        ["refresh"], ["firstboot", "--force"],
        ["selftest", "--peer", argv_safe], ["selftest", "--peer", "10.0.0.2", "--compare", str(facts_file)],
    ]


def assert_safe(out, command: str, argv: list[str]) -> None:
    assert_clean_exit(out, command)
    assert raw_controls(out.stdout) == [], (argv, out.stdout[-3000:])
    assert raw_controls(out.stderr) == [], (argv, out.stderr[-3000:])


@settings(max_examples=examples(3), suppress_health_check=[HealthCheck.too_slow])
@given(nic=iface_name, alias=free_text, model=free_text, container=free_text)
def test_no_command_prints_a_control_character_from_a_name(nic, alias, model, container):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        m = hostile_machine(base / "root", nic, alias, model, container)
        env = {"GUESTCHECK_ROOT": str(m.base), "GUESTCHECK_PROFILES": str(PROFILES), "NO_COLOR": ""}
        facts = run_guestcheck(["facts", "--sample", "0"], env=env)
        assert_safe(facts, "facts", ["facts"])
        facts_file = base / "facts.json"
        facts_file.write_text(facts.stdout)
        assert nic in [n["name"] for n in json.loads(facts.stdout)["nics"]]  # the hostile name, as it is
        shown = ""
        for argv in commands(nic, container, facts_file):
            out = run_guestcheck(argv, env=env, timeout=120)
            assert_safe(out, argv[0], argv)
            shown += out.stdout + out.stderr
        assert escape_control(nic) in shown  # the name is shown, escaped: not left out
        assert "refusing throughput: memory guarantee could not be confirmed" in shown  # the guard named the container

        # selftest: the route to the peer goes out through the hostile NIC (the one part replaced: no such
        # interface exists here); exit 17 names it, and a slow result lists doctor's findings about it
        fake = FakeIperf3(base / "bin")
        fake.script_client([Reply(json.dumps(UPLOAD_2_STREAMS).encode())])
        for args in (["--peer", "127.0.0.1"], ["--peer", "127.0.0.1", "--expect", "1G", "--direction", "upload",
                                                "--parallel", "1", "--duration", "1"]):
            out = _selftest_via(nic, *args, root=str(m.base), path=fake.env["PATH"])
            assert_safe(out, "selftest", args)
            assert escape_control(nic) in out.stdout + out.stderr, (out.stdout, out.stderr)


def test_the_suite_runs_from_this_checkout():
    assert (REPO / "guestcheck" / "output.py").is_file()
