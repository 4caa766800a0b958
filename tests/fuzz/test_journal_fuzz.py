"""Journals, as `tune rollback` and `tune verify` read them: hostile values in a valid shape, and garbage.

Each example runs guestcheck as a process on a fake machine (GUESTCHECK_ROOT with tests/tune_fake.py's
FakeKernel): the exit code is in tune's README table, no traceback, and nothing is written outside proc/sys/,
the persist file and var/lib/guestcheck/. A victim file inside the root and one beside it must stay as they are.
Interface names are never ones this machine has: rollback of NIC settings acts on the real kernel.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from guestcheck.tune.journal import OLD_SCHEMA, STATE_SCHEMA
from guestcheck.tune.persist import encode
from tests.fuzz.harness import assert_clean_exit, changed_outside, examples, run_guestcheck, tree
from tests.tune_fake import PROFILES, STOCK, FakeKernel

ALLOWED = ["proc/sys/", "etc/sysctl.d/90-guestcheck.conf", "var/lib/guestcheck/"]
HOST_IFACES = set(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else set()
FEW = settings(max_examples=examples(12),
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

hostile_keys = st.sampled_from([
    "net.//.//.//.tmp.victim", "net.//.vm.swappiness", "net.//.//.//.//.//.//.//.//.etc.victim",
    "net.ipv4.conf.//.//.//.//.victim", "net..ipv4", "net.ipv4.conf.eth0/1.rp_filter", "../../victim",
    "net.ipv4.tcp_fin_timeout\n", "net/../../victim", "", "a" * 600,
]) | st.sampled_from(sorted(STOCK)) | st.text(max_size=30)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40))
values = scalars | st.sampled_from(["60", "15", "4096 131072 6291456", "x\ny", "1" * 5000])
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
ifnames = (st.sampled_from(["gcfz0", "gcfz1", "../x", "", "a" * 40, "eth0;id", "x\ny"]) | st.text(max_size=16)).filter(
    lambda n: n not in HOST_IFACES)
channel_counts = st.integers(min_value=-(2**70), max_value=2**70) | anything
rx_queues = st.sampled_from(["rx-0", "rx-99999", "rx-100000", "tx-0", "rx-0/../x", "rx-\u0663"]) | st.text(max_size=8)
rps_masks = st.sampled_from(["f", "0", "ff,ffffffff", 'f", RUN+="/bin/sh', "zz", "", "f" * 9, "F"]) | anything


@st.composite
def shaped_journals(draw) -> str:
    """A tune-state document with every field present in its usual shape and hostile values inside."""
    doc = {
        "schema": draw(st.sampled_from([STATE_SCHEMA, STATE_SCHEMA, OLD_SCHEMA, "guestcheck.tune-state/3", None])),
        "profile": draw(st.one_of(st.none(), st.text(max_size=20), anything)),
        "complete": draw(st.one_of(st.booleans(), anything)),
        "sysctl": draw(st.dictionaries(hostile_keys, st.one_of(
            st.fixed_dictionaries({"original": values, "applied": values}), anything), max_size=4)),
        "persist_original": draw(st.one_of(st.none(), st.text(max_size=60), anything)),
        "persist_recorded": draw(st.one_of(st.booleans(), anything)),
        "persist_mode": draw(st.one_of(st.none(), st.integers(min_value=-10, max_value=0o10000), anything)),
        "features": draw(st.dictionaries(ifnames, st.dictionaries(st.text(max_size=24), anything, max_size=3),
                                         max_size=2)),
        "channels": draw(st.dictionaries(ifnames, st.dictionaries(
            st.sampled_from(["rx", "tx", "other", "combined", "bogus"]), channel_counts, max_size=4), max_size=2)),
        "boot_id": draw(st.one_of(st.none(), st.text(max_size=40))),
        "rps": draw(st.dictionaries(ifnames, st.dictionaries(rx_queues, rps_masks, max_size=2), max_size=2)),
        "applied": draw(st.one_of(st.fixed_dictionaries({"rps": st.dictionaries(
            ifnames, st.dictionaries(rx_queues, rps_masks, max_size=2), max_size=2)}), anything)),
        "nics": draw(st.dictionaries(ifnames, st.one_of(st.fixed_dictionaries(
            {"perm_mac": st.none() | st.text(max_size=20), "mac": st.none() | st.text(max_size=20),
             "ifindex": st.none() | channel_counts, "boot_id": st.none() | st.text(max_size=40)}), anything),
            max_size=2)),
    }
    for name in draw(st.sets(st.sampled_from(sorted(doc)), max_size=3)):
        del doc[name]
    text = json.dumps(doc, allow_nan=True)
    if draw(st.booleans()):  # numbers JSON itself has no place for
        text = text.replace('"rx": 0', '"rx": ' + draw(st.sampled_from(["NaN", "-Infinity", "1e999", "9" * 5000])))
    return text


garbage = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    anything.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.integers(min_value=1, max_value=60000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=60000).map(
        lambda n: b'{"schema": "' + STATE_SCHEMA.encode() + b'", "sysctl": ' + b'{"a":' * n + b"1" + b"}" * (n + 1)),
)


def check_rollback_and_verify(journal: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outside = Path(tmp)
        root = outside / "root"
        FakeKernel(root)
        (root / "tmp").mkdir()
        (root / "etc/sysctl.d").mkdir(parents=True)  # as on any system: a kept (even empty) file is put back there
        (root / "tmp/victim").write_text("victim inside the root\n")
        (outside / "victim").write_text("victim beside the root\n")
        state = root / "var/lib/guestcheck/tune-state.json"
        state.parent.mkdir(parents=True)
        state.write_bytes(journal)
        env = {"GUESTCHECK_ROOT": str(root), "GUESTCHECK_PROFILES": str(PROFILES)}
        before = tree(outside)
        for command in (["tune", "verify"], ["tune", "rollback"], ["tune", "verify"]):
            out = run_guestcheck(command, env=env, timeout=60)
            assert_clean_exit(out, "tune")
            if out.returncode == 3:
                assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        after = tree(outside)
        assert changed_outside(before, after, ["root/" + a for a in ALLOWED]) == []
        assert (outside / "victim").read_text() == "victim beside the root\n"
        assert (root / "tmp/victim").read_text() == "victim inside the root\n"


@FEW
@given(shaped_journals())
def test_hostile_values_in_a_journal_never_crash_or_escape(text):
    check_rollback_and_verify(text.encode("utf-8", "surrogatepass"))


@FEW
@given(garbage)
def test_garbage_journals_are_one_line_errors(data):
    assume(data.strip() != b"")
    check_rollback_and_verify(data)


@st.composite
def valid_journals(draw) -> str:
    """Journals that pass every check, with the oddest content they may legally hold: rollback restores
    exactly what they say, and only under proc/sys and the persist file."""
    printable = st.text(st.characters(min_codepoint=32, max_codepoint=0x2fff, blacklist_categories=("Cs", "Zl",
                                                                                                     "Zp")),
                        min_size=1, max_size=30).filter(lambda v: v.isprintable())
    old = draw(st.booleans())  # 1ab7483's /1 (file contents as text) or /2 (base64 of the bytes)
    doc = {
        "schema": OLD_SCHEMA if old else STATE_SCHEMA,
        "profile": draw(st.one_of(st.none(), st.text(max_size=30))),
        "complete": draw(st.booleans()),
        "sysctl": draw(st.dictionaries(st.sampled_from(sorted(STOCK)), st.fixed_dictionaries(
            {"original": printable | st.sampled_from(["-1", "9" * 400]), "applied": printable}), max_size=4)),
        "persist_original": draw(st.one_of(st.none(), st.text(max_size=80),
                                           st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")))),
        "persist_recorded": draw(st.booleans()),
        "persist_mode": draw(st.one_of(st.none(), st.integers(min_value=0, max_value=0o777))),
        "channels": draw(st.dictionaries(st.sampled_from(["gcfz0", "gcfz.1"]), st.dictionaries(
            st.sampled_from(["rx", "tx", "combined"]), st.integers(min_value=0, max_value=65535), max_size=2),
            max_size=1)),
    }
    if not old and doc["persist_original"] is not None:
        doc["persist_original"] = base64.b64encode(encode(doc["persist_original"])).decode()
    return json.dumps(doc)


@FEW
@given(valid_journals())
def test_valid_journals_restore_only_inside_the_documented_paths(text):
    check_rollback_and_verify(text.encode("utf-8", "surrogatepass"))
