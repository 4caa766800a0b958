"""First boot's inputs: /etc/guestcheck/guestcheck.conf and cloud-init's instance-data.json, hostile or damaged.

`guestcheck firstboot` runs as a process in a fake machine (GUESTCHECK_ROOT). The property: exit 0 always, no
traceback and no internal error, the stamp written (unless the config disables first boot), report.json strict
JSON, damaged instance data keyed on machine-id instead, and nothing written outside the documented paths:
var/lib/guestcheck/, the textfile directory, etc/sysctl.d/90-guestcheck.conf and the (fake) kernel's /proc/sys
when a profile applies.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakemachine import FakeMachine
from tests.fuzz.harness import assert_clean_exit, changed_outside, run_guestcheck, tree

MACHINE_ID = "0123456789abcdef0123456789abcdef"
LIVE = {"net/ipv4/tcp_tw_reuse": "2", "net/ipv4/tcp_fin_timeout": "60", "net/core/somaxconn": "4096",
        "net/ipv4/tcp_max_syn_backlog": "1024", "net/core/netdev_max_backlog": "1000",
        "net/ipv4/ip_local_port_range": "32768\t60999"}

HOSTILE_TEXT = st.text(st.sampled_from(list("ab/.-_ ;|$`'\"\\\x00\x1b\x07\r\u202e\ufeff%[]=#é")), max_size=12)
NUMBERS = st.sampled_from(["0", "0.5", "1", "-1", "nan", "inf", "-inf", "1e400", "9" * 500, "0x10", "", "soon"])
VALUES = {
    "enabled": st.sampled_from(["yes", "no", "true", "off", "maybe", "", "1"]) | HOSTILE_TEXT,
    "profile": st.sampled_from(["many-connections", "throughput", "nosuch", "/etc/passwd", "../profiles/wan",
                                ".hidden", "wan\nx", "many-connections;reboot", ""]) | HOSTILE_TEXT,
    "textfile_dir": st.sampled_from(["/srv/metrics", "no", "", "relative", "/srv/../../../escape", "/srv/m/..",
                                     "/var/lib/prometheus/node-exporter"]) | HOSTILE_TEXT,
    "timeout": NUMBERS,
    "sample": st.sampled_from(["0", "0.01", "nan", "-1", "61", "1e400", "x"]),
}


@st.composite
def configs(draw) -> Optional[str]:
    """None (no file), garbage, or a [firstboot] section with hostile values; `sample` stays short when valid."""
    kind = draw(st.sampled_from(["none", "garbage", "section", "section"]))
    if kind == "none":
        return None
    if kind == "garbage":
        return draw(st.sampled_from(["[firstboot\n", "profile = x\n", "[firstboot]\n  continued\n", "\x00\xff",
                                     "[firstboot]\nprofile = a\nprofile = b\n", "[a]\n[a]\n"])) + draw(HOSTILE_TEXT)
    lines = ["[firstboot]", "sample = 0"]
    for key in draw(st.lists(st.sampled_from([*VALUES, "unknown_key"]), unique=True, max_size=4)):
        if key == "sample":
            lines[1] = f"sample = {draw(VALUES['sample'])}"
        elif key == "unknown_key":
            lines.append(f"{draw(HOSTILE_TEXT).replace('=', '').replace('[', '') or 'k'} = 1")
        else:
            value = draw(VALUES[key]).replace("\n", "\n ")  # a continuation line, as INI reads it
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


@st.composite
def instance_data(draw) -> tuple[Optional[str], bool]:
    """(file text or None, whether cloud-init's id is usable)."""
    kind = draw(st.sampled_from(["none", "good", "bad-id", "garbage"]))
    if kind == "none":
        return None, False
    if kind == "good":
        iid = draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20))
        return json.dumps({"v1": {draw(st.sampled_from(["instance_id", "instance-id"])): iid}}), True
    if kind == "bad-id":
        bad = draw(st.sampled_from(["NaN", "Infinity", "1e400", "9" * 5000, "[]", "{}", "null", "7", '""', '"  "',
                                    '"' + "x" * 2000 + '"', "[" * 50000 + "]" * 50000]))
        return '{"v1": {"instance_id": ' + bad + "}}", False
    return draw(st.sampled_from(["", "{", "[]", '"i-1"', '{"v1": "i-1"}', '{"v1": []}', "\xff\xfe",
                                 "[" * 50000 + "]" * 50000])), False


def fake_machine(base: Path, config: Optional[str], data: Optional[str], node_exporter: bool) -> FakeMachine:
    m = FakeMachine(base)
    m.set_dmi(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)")
    m.add_nic("ens3", driver="e1000", pci_id="8086:100e", speed=1000, duplex="full")
    m.write("etc/machine-id", MACHINE_ID + "\n")
    for key, value in LIVE.items():
        m.write(f"proc/sys/{key}", value + "\n")
    if config is not None:
        (base / "etc/guestcheck").mkdir(parents=True, exist_ok=True)
        (base / "etc/guestcheck/guestcheck.conf").write_bytes(config.encode("utf-8", "surrogateescape"))
    if data is not None:
        (base / "run/cloud-init").mkdir(parents=True, exist_ok=True)
        (base / "run/cloud-init/instance-data.json").write_bytes(data.encode("utf-8", "surrogateescape"))
    if node_exporter:
        (base / "var/lib/prometheus/node-exporter").mkdir(parents=True)
    return m


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise ValueError(f"{token} in report.json")

    return json.loads(text, parse_constant=refuse)


def allowed_changes(base: Path, before: dict, after: dict) -> list[str]:
    """Changes outside the documented paths; the configured textfile directory and its parents may be made."""
    allowed = ["var/lib/guestcheck/", "var/lib/prometheus/node-exporter/guestcheck.prom", "proc/sys/",
               "etc/sysctl.d/90-guestcheck.conf"]
    made = {"var", "var/lib", "etc", "etc/sysctl.d"}  # made when missing, on the way to the files above
    prom = [p for p in set(after) - set(before) if p.endswith("/guestcheck.prom")]
    for path in prom:  # the textfile directory the config named: the file, the directory and its parents
        allowed.append(path)
        parent = os.path.dirname(path)
        while parent:
            made.add(parent)
            parent = os.path.dirname(parent)
    return [p for p in changed_outside(before, after, allowed) if p not in made]


@settings(max_examples=max(20, settings.default.max_examples // 2))  # each example is a process that collects
@given(config=configs(), data=instance_data(), node_exporter=st.booleans())
def test_first_boot_always_finishes_and_stays_in_its_paths(config, data, node_exporter):
    text, usable_id = data
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp, "root")
        fake_machine(base, config, text, node_exporter)
        before = tree(base)
        out = run_guestcheck(["firstboot"], env={"GUESTCHECK_ROOT": str(base)}, timeout=200)
        after = tree(base)
        assert_clean_exit(out, "firstboot")
        assert out.returncode == 0 and "internal error" not in out.stdout, out.stdout
        assert all(line.isprintable() for line in out.stdout.splitlines()), out.stdout
        assert allowed_changes(base, before, after) == [], out.stdout
        assert not (base.parent / "escape").exists()
        stamp_file = base / "var/lib/guestcheck/firstboot.json"
        if "disabled in" in out.stdout:
            assert not stamp_file.exists()
            return
        stamp = _strict(stamp_file.read_text())
        report = _strict((base / "var/lib/guestcheck/report.json").read_text())
        assert report["schema"] == "guestcheck.doctor/1" and report["firstboot"]["instance_id"] == stamp["instance_id"]
        if not usable_id:
            assert (stamp["instance_id"], stamp["instance_source"]) == (MACHINE_ID, "machine-id")
        profile = report["firstboot"]["profile"]
        if profile not in (None, "many-connections"):
            assert (base / "proc/sys/net/core/somaxconn").read_text() == "4096\n"  # nothing else applies
            assert not (base / "etc/sysctl.d").exists()
        second = run_guestcheck(["firstboot"], env={"GUESTCHECK_ROOT": str(base)}, timeout=200)
        assert second.returncode == 0 and "already checked" in second.stdout, second.stdout
