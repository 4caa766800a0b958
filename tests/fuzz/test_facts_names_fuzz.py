"""Any interface name the kernel accepts round-trips: facts --json -> doctor --facts gives the same findings.

Names are bytes: 1-15 of them, no NUL, '/', ':' or whitespace (the kernel's isspace, 0xa0 included), not
'.' or '..' (dev_valid_name). Fake roots; the same code paths the commands run (collect, judge,
the JSON renderer, the facts-file reader, judge).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from guestcheck.doctor import build_report
from guestcheck.factsfile import load_facts_file
from guestcheck.judge import judged_facts
from guestcheck.render.json import dumps
from tests.fakemachine import FakeMachine

_NOT_IN_NAMES = {0, ord("/"), ord(":"), 9, 10, 11, 12, 13, 32, 0xA0}
names = st.binary(min_size=1, max_size=15).filter(
    lambda b: b not in (b".", b"..") and not _NOT_IN_NAMES.intersection(b))


@given(name=names)
def test_any_kernel_name_round_trips_with_the_same_findings(name):
    text_name = name.decode("utf-8", "surrogateescape")
    with tempfile.TemporaryDirectory() as tmp:
        m = FakeMachine(Path(tmp, "root"))
        m.add_nic(text_name, driver="e1000", pci_id="8086:100e", ifindex=3, mtu=1400)
        facts = m.collect()
        written = dumps(judged_facts(facts).to_dict())  # what `facts --json` prints
        assert written.encode("utf-8")  # valid UTF-8: no lone surrogate
        saved = Path(tmp, "facts.json")
        saved.write_text(written, encoding="utf-8")
        direct = json.loads(dumps(build_report(m.collect()).to_dict()))  # what `doctor --json` prints
        replayed_facts = load_facts_file(str(saved))
        assert [n.name for n in replayed_facts.nics] == [text_name]
        replayed = json.loads(dumps(build_report(replayed_facts).to_dict()))
        assert replayed["findings"] == direct["findings"]
        assert replayed["facts"]["nics"] == direct["facts"]["nics"]
        report = Path(tmp, "report.json")  # a saved doctor report is accepted back too
        report.write_text(dumps(build_report(m.collect()).to_dict()), encoding="utf-8")
        assert json.loads(dumps(build_report(load_facts_file(str(report))).to_dict()))["findings"] == direct["findings"]
