"""Issue 18 item 7: a journal's [Match] line never reaches a udev rule or a .link file unchecked.

A journal (it could have been edited) holding `OriginalName=ra", RUN+="/bin/touch /tmp/x` is refused by every
tune command that reads it, with one line and exit 3, and no udev rule with a RUN key (nor any other file)
is written.
"""

from __future__ import annotations

import json

import pytest

from guestcheck.tune import TuneError
from guestcheck.tune.journal import LinkRecord, State, state_from_text
from guestcheck.tune.units.links import put_link_files
from tests.tune_fake import FakeKernel, one_line_error, tune

INJECTED = 'OriginalName=ra", RUN+="/bin/touch /tmp/x'


def journal(schema: str) -> str:
    return json.dumps({"schema": schema, "features": {"ra": {"tx-scatter-gather": False}},
                       "applied": {"features": {"ra": {"tx-scatter-gather": True}}},
                       "links": {"ra": {"name": "50-guestcheck-ra.link", "match": [INJECTED],
                                        "rule_name": "90-guestcheck-ra.rules", "rule_recorded": True,
                                        "rule_args": {"K:tx-scatter-gather": "on"}}}})


def files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("schema", ["guestcheck.tune-state/1", "guestcheck.tune-state/2"])
def test_an_injected_match_line_in_a_journal_is_refused_and_no_run_key_is_written(tmp_path, schema):
    FakeKernel(tmp_path)
    state = tmp_path / "var/lib/guestcheck/tune-state.json"
    state.parent.mkdir(parents=True)
    state.write_text(journal(schema))
    rules = tmp_path / "etc/udev/rules.d"
    rules.mkdir(parents=True)
    before = files(tmp_path)
    for args in (["rollback"], ["rollback", "--dry-run"], ["verify"], ["apply", "many-connections"]):
        line = one_line_error(tune(tmp_path, *args))
        assert "is damaged: links ra match" in line and "is not an interface name" in line, line
    assert files(tmp_path) == before
    assert not any(b"RUN" in p.read_bytes() for p in rules.iterdir())


def test_the_writers_refuse_a_bad_match_line_that_did_not_come_through_the_reader(tmp_path):
    """Defence in depth: put_link_files (the one writer of the .link file and rule) checks the lines itself."""
    k = FakeKernel(tmp_path)
    record = LinkRecord(name="50-guestcheck-ra.link", match=[INJECTED], settings={"TCPSegmentationOffload": "yes"},
                        rule_name="90-guestcheck-ra.rules", rule_args={"K:tx-scatter-gather": "on"})
    with pytest.raises(TuneError, match="refusing to write"):
        put_link_files(k.roots, "ra", record, "why")
    assert not (tmp_path / "etc/udev/rules.d/90-guestcheck-ra.rules").exists()
    assert not (tmp_path / "etc/systemd/network/50-guestcheck-ra.link").exists()
    with pytest.raises(TuneError):
        state_from_text(State(links={"ra": record}).to_text(), "J")
