"""Facts files for `guestcheck doctor --facts FILE`: valid-shaped documents with hostile values, and garbage.

A facts file comes from a customer's machine (or anyone): huge integers, NaN and Infinity, deep nesting, wrong
types, control characters and shell metacharacters in names. The property, for --json, the human report and
--format prometheus: no traceback and no internal error; an exit code from the README's doctor row; a damaged
file is exit 3 with one line; --json stays strict JSON; no control character reaches the terminal; and every
fix names a hostile interface only inside shell quotes, so `shlex.split` gives it back as one word.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.harness import assert_clean_exit, run_guestcheck
from tests.unit.test_checks_fixes import outside_quotes

MARKER = "|sh"  # in every hostile name: it must never show outside shell quotes in a fix

BASE: dict[str, Any] = {
    "schema": "guestcheck.facts/1",
    "host": {"kernel": "6.1.0", "os": "Debian 12", "hostname": "vm", "is_root": True, "vcpus": 4},
    "virt": {"hypervisor": "kvm", "evidence": []},
    "nics": [{
        "name": "eth0", "kind": "emulated", "driver": "e1000", "bus": "pci", "pci_id": "8086:100e",
        "operstate": "up", "mtu": 1500, "speed_mbps": 1000, "rx_queues": 1, "tx_queues": 2,
        "channels": {"max_combined": 4, "combined": 1},
        "features": {"rx-gro": {"on": False, "fixed": False}, "tx-tcp-segmentation": {"on": False, "fixed": False}},
    }],
    "memory": {"total_bytes": 4 << 30, "available_bytes": 2 << 30, "swap_total_bytes": 0},
    "cpu_steal": {"seconds": 1.0, "percent": 0.5, "per_cpu": {"cpu0": 0.5}},
    "softirq": {"cpus": [{"cpu": 0, "dropped": 3, "dropped_per_s": 3.0, "net_rx_per_s": 5000.0},
                         {"cpu": 1, "net_rx_per_s": 10.0}],
                "nics": [{"nic": "eth0", "rx_queues": 1, "tx_queues": 2, "rps_cpus": {"rx-0": "0"},
                          "xps_cpus": {"tx-0": "0", "tx-1": "0"},
                          "irqs": [{"irq": "24", "name": "eth0-rx-0", "affinity": "0"},
                                   {"irq": "25", "name": "eth0-tx-1", "affinity": "0"}]}],
                "irqbalance": False, "netdev_max_backlog": 1000},
    "path": {"routes": [{"family": "ipv4", "dev": "eth0", "gateway": "10.0.2.2", "networks": ["10.0.2.0/24"],
                         "mtu": 9000, "dev_mtu": 1500}]},
    "bridges": [{"name": "br0", "stp_state": 1, "forward_delay_s": 15.0,
                 "ports": [{"name": "eth0", "state": "learning"}]}],
    "vlans": [{"name": "eth0.5", "vlan_id": 5, "lower": "eth0"}],
    "sample_seconds": 1.0,
}

# where a number sits in BASE: a hostile number there must be refused (exit 3), never judged
NUMBER_PATHS = [("host", "vcpus"), ("memory", "total_bytes"), ("memory", "available_bytes"), ("cpu_steal", "percent"),
                ("cpu_steal", "seconds"), ("nics", 0, "mtu"), ("nics", 0, "speed_mbps"), ("nics", 0, "tx_queues"),
                ("softirq", "cpus", 0, "net_rx_per_s"), ("softirq", "nics", 0, "tx_queues"), ("sample_seconds",),
                ("path", "routes", 0, "mtu"), ("bridges", 0, "forward_delay_s")]
# where a name sits: hostile text there is judged, and must come out quoted and escaped
NAME_PATHS = [("nics", 0, "name"), ("softirq", "nics", 0, "nic"), ("path", "routes", 0, "dev"),
              ("path", "routes", 0, "gateway"), ("bridges", 0, "name"), ("bridges", 0, "ports", 0, "name"),
              ("softirq", "nics", 0, "irqs", 0, "irq"), ("vlans", 0, "name"), ("host", "kernel"),
              ("nics", 0, "driver")]

HOSTILE_CHARS = st.sampled_from(list(";&|$`'\"\\(){}<>*?!#~ \t\n\r\x00\x07\x1b\x7f\x9b\u202e\u2028\ufeffé✓-_.:"))
hostile_name = st.builds(
    lambda a, b: a + MARKER + b,
    st.text(HOSTILE_CHARS | st.characters(min_codepoint=48, max_codepoint=122), max_size=10),
    st.text(HOSTILE_CHARS, max_size=10),
)
# tokens that are not valid in strict JSON (or not numbers a machine has), spliced into the text
BAD_NUMBERS = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", str(10**400), str(2**64),
                               str(-(2**64)), "1e300", '"12"', "true", "[]", "{}", '"\\ud800"'])
# a wrong type at a place that has a type: each one damages the document
WRONG_TYPES = [(("host",), 1.5), (("host",), []), (("nics",), {}), (("nics",), [1]), (("nics", 0), {}),
               (("nics", 0), "eth0"), (("nics", 0, "features"), {"rx-gro": 1}), (("nics", 0, "features"), []),
               (("nics", 0, "channels"), [4]), (("softirq", "cpus"), [{"cpu": "0"}]), (("bridges", 0, "ports"), [1]),
               (("nics", 0, "name"), None), (("nics", 0, "name"), ["eth0"]), (("host", "is_root"), "yes"),
               (("host", "vcpus"), None), (("memory",), 7), (("virt", "evidence"), [{}])]
DEEP = "[" * 50000 + "]" * 50000


def _set(doc: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


@st.composite
def facts_files(draw) -> tuple[str, str, list[str]]:
    """(file text, "ok" or "damaged", the hostile names put in)."""
    doc = json.loads(json.dumps(BASE))
    names = []
    for path in draw(st.lists(st.sampled_from(NAME_PATHS), max_size=4, unique=True)):
        name = draw(hostile_name)
        _set(doc, path, name)
        names.append(name)
    _set(doc, ("softirq", "nics", 0, "nic"), doc["nics"][0]["name"])  # the steering checks must meet the NIC
    kind = draw(st.sampled_from(["ok", "number", "deep", "type", "garbage"]))
    if kind == "ok":
        return json.dumps(doc, ensure_ascii=draw(st.booleans())), "ok", names
    if kind == "number":
        _set(doc, draw(st.sampled_from(NUMBER_PATHS)), "@@BAD@@")
        text = json.dumps(doc).replace('"@@BAD@@"', draw(BAD_NUMBERS))
        return text, "damaged", names
    if kind == "deep":
        _set(doc, draw(st.sampled_from(NUMBER_PATHS + NAME_PATHS)), "@@BAD@@")
        return json.dumps(doc).replace('"@@BAD@@"', DEEP), "damaged", names
    if kind == "type":
        path, wrong = draw(st.sampled_from(WRONG_TYPES))
        _set(doc, path, wrong)
        return json.dumps(doc), "damaged", names
    garbage = draw(st.sampled_from(["", "{", "[1,2]", "null", '{"schema": "x"}', "\ufeff{}", DEEP]))
    return garbage + draw(st.text(max_size=20)), "damaged", names


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise ValueError(f"{token} in doctor's JSON")

    return json.loads(text, parse_constant=refuse)


def _terminal_safe(text: str) -> bool:
    return not [ch for ch in text if ch != "\n" and (unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")
                                                     or 0x202a <= ord(ch) <= 0x202e or 0x2066 <= ord(ch) <= 0x2069)]


@given(case=facts_files(), fmt=st.sampled_from(["json", "human", "prometheus"]))
def test_doctor_judges_or_refuses_any_facts_file(case, fmt):
    text, kind, _names = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "facts.json")
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = run_guestcheck(["doctor", "--facts", str(path), "--format", fmt])
    assert_clean_exit(out, "doctor")
    assert _terminal_safe(out.stderr), out.stderr
    if kind == "damaged":
        assert out.returncode == 3 and out.stdout == "", (out.returncode, out.stdout[:300])
        assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("Error: "), out.stderr
        return
    assert out.returncode in (0, 1, 2), out.stderr
    assert _terminal_safe(out.stdout), out.stdout
    if fmt == "json":
        report = _strict(out.stdout)
        assert report["schema"] == "guestcheck.doctor/1"
        fixes = [f["fix"] for f in report["findings"]]
        ethtool = [f for f in report["findings"] if f["fix"].startswith(("ethtool -K ", "ethtool -L "))]
        assert ethtool, report["findings"]  # the NIC's offload and queue checks ran on whatever name it has
        for finding in ethtool:
            assert shlex.split(finding["fix"])[2] == finding["subject"], finding
    elif fmt == "human":
        fixes = [line.split("fix: ", 1)[1] for line in out.stdout.splitlines() if line.lstrip().startswith("fix: ")]
    else:
        fixes = []
        assert out.stdout.endswith("\n") and "guestcheck_status" in out.stdout
    for fix in fixes:
        assert MARKER not in outside_quotes(fix), fix
