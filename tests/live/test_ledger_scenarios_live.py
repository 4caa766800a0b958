"""The six loss scenarios of the ledger (tests/ledger_scenarios.py) on the real kernel: each induces the drops
it says, counted independently, and the counter it names moves by that much; doctor's ledger counts them
within 5 % and names the layer and the finding (once doctor --json has a `ledger` section)."""

from __future__ import annotations

import shutil
from typing import Callable, Dict

import pytest

from tests import ledger_scenarios as scen
from tests.ledger_scenarios import SCENARIOS, Induced, kernel_total, ledger_row, measure
from tests.netns import requires_netns

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3 (apt: iperf3)"),
              pytest.mark.skipif(shutil.which("nstat") is None, reason="needs nstat (iproute2)")]


def _qdisc(i: Induced) -> None:
    # 40 Mbit/s into 10 Mbit/s: about three in four dropped, the rest passed by the tbf's rate
    assert 0.6 * i.figures["sent"] <= i.count <= 0.9 * i.figures["sent"], i


def _rcvbuf(i: Induced) -> None:
    # SO_RCVBUF=1 keeps a handful of 200-byte datagrams; every other one is dropped
    assert scen.RCVBUF_DATAGRAMS - 20 <= i.count < scen.RCVBUF_DATAGRAMS, i


def _sent(expected: int) -> Callable[[Induced], None]:
    def check(i: Induced) -> None:
        # every datagram sent is dropped, and every one is sent (nothing on the way drops)
        assert i.count == expected, i
    return check


def _listen(i: Induced) -> None:
    # every flood SYN is dropped, and retransmitted 1 s apart (linear SYN timeouts): 3 SYNs per connect in 2.5 s
    assert i.figures["syn_retransmits"] == int(scen.LISTEN_WAIT) * scen.LISTEN_CONNECTS, i
    assert i.count == (1 + int(scen.LISTEN_WAIT)) * scen.LISTEN_CONNECTS, i


def _retrans(i: Induced) -> None:
    # a 60,000-byte queue at 100 Mbit/s loses segments every few round trips: hundreds to thousands retransmitted
    # a segment can be retransmitted more than once, so the bound is loose: more than twice every segment sent
    # would mean the count is not retransmissions
    assert 100 <= i.count <= 2 * i.figures["bytes_sent"] // 1448, i


EXPECTED: Dict[str, Callable[[Induced], None]] = {
    "qdisc-drops": _qdisc,
    "udp-rcvbuf": _rcvbuf,
    "udp-noport": _sent(scen.NOPORT_DATAGRAMS),
    "listen-overflow": _listen,
    "rp-filter": _sent(scen.RPF_DATAGRAMS),
    "tcp-retrans": _retrans,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_induces_what_it_counts(name: str) -> None:
    """The independent count is the scenario's (> 0, in its stable band, nothing dropped elsewhere), and the
    counter the ledger should read, as tc -s / nstat read it in the fresh namespace, agrees within 5 %."""
    with SCENARIOS[name]() as s:
        induced = s.induce()
        total = kernel_total(s)
    print(f"\n{name}: induced {induced.count} ({induced.method}; {induced.figures}), {s.counter} {total}")
    assert induced.count > 0
    assert not any(induced.elsewhere.values()), induced.elsewhere
    EXPECTED[name](induced)
    assert abs(total - induced.count) <= 0.05 * induced.count, (total, induced)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_ledger_counts_the_scenario(name: str) -> None:
    """doctor's window around the traffic: the ledger row of the scenario's counter rose by the induced count
    within 5 %, filed under the right layer, explaining the right finding, which doctor raised."""
    with SCENARIOS[name]() as s:
        m = measure(s)
    assert not m.error, m.error
    assert m.inside, "the traffic outlasted doctor's window"
    assert m.doc is not None
    row = ledger_row(s, m.doc)
    assert row is not None, [r for r in m.doc["ledger"]["rows"] if r.get("moved")]
    print(f"\n{name}: induced {m.induced.count}, ledger {row}")
    assert row["layer"] == s.layer and row["finding"] == s.finding, row
    assert abs(row["rise"] - m.induced.count) <= 0.05 * m.induced.count, (row, m.induced)
    assert s.finding in {f["id"] for f in m.doc["findings"]}
    assert m.doc["ledger"]["netns_is_initial"] is False
