"""watch/links.py: interface totals from a statistics/ tree, per-queue counters from drivers' own names."""

from __future__ import annotations

from guestcheck.roots import Roots
from guestcheck.watch.links import interface_names, queue_counter, queue_counters, read_link, read_links


def test_queue_counter_names_of_common_drivers():
    assert queue_counter("rx_queue_0_bytes") == (("rx", 0), "bytes")  # virtio_net, hv_netvsc, ixgbe
    assert queue_counter("tx_queue_3_packets") == (("tx", 3), "packets")
    assert queue_counter("rx_queue_1_drops") == (("rx", 1), "drops")
    assert queue_counter("queue_2_rx_cnt") == (("rx", 2), "packets")  # ENA
    assert queue_counter("queue_0_tx_bytes") == (("tx", 0), "bytes")
    assert queue_counter("rx5_bytes") == (("rx", 5), "bytes")  # mlx5
    assert queue_counter("tx-1.packets") == (("tx", 1), "packets")  # i40e, iavf
    assert queue_counter("rx-0_dropped") == (("rx", 0), "drops")  # MANA


def test_names_that_are_not_queue_traffic_are_left_out():
    for name in ("rx_queue_0_xdp_bytes", "rx_bytes", "bw_in_allowance_exceeded", "rx_queue_99999_bytes", ""):
        assert queue_counter(name) is None, name


def test_queue_counters_keep_queues_with_traffic_figures_only():
    stats = {"rx_queue_0_bytes": 100, "rx_queue_0_packets": 2, "rx_queue_1_drops": 5, "tx_queue_0_bytes": 7,
             "rx_queue_0_xdp_packets": 9}
    assert queue_counters(stats) == {("rx", 0): {"bytes": 100, "packets": 2}, ("tx", 0): {"bytes": 7}}


class Stats:
    def __init__(self, answers):
        self.answers = answers

    def stats(self, name):
        answer = self.answers[name]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _nic(root, name, index, **counters):
    base = root / "sys/class/net" / name
    (base / "statistics").mkdir(parents=True)
    (base / "ifindex").write_text(f"{index}\n")
    for counter, value in counters.items():
        (base / "statistics" / counter).write_text(f"{value}\n")


def test_read_link_reads_totals_and_queues(tmp_path):
    _nic(tmp_path, "eth0", 2, rx_bytes=1000, tx_bytes=2000, rx_packets=10, tx_packets=20, rx_dropped=1)
    roots = Roots.under(str(tmp_path))
    link = read_link(roots, "eth0", Stats({"eth0": {"rx_queue_0_bytes": 600}}))
    assert link.ifindex == 2
    assert link.totals == {"rx_bytes": 1000, "tx_bytes": 2000, "rx_packets": 10, "tx_packets": 20, "rx_dropped": 1}
    assert link.queues == {("rx", 0): {"bytes": 600}}


def test_a_driver_without_statistics_still_gives_totals(tmp_path):
    _nic(tmp_path, "eth0", 2, rx_bytes=1)
    link = read_link(Roots.under(str(tmp_path)), "eth0", Stats({"eth0": OSError("unsupported")}))
    assert link.totals == {"rx_bytes": 1} and link.queues == {}


def test_an_interface_gone_between_listing_and_reading_is_skipped(tmp_path):
    _nic(tmp_path, "eth0", 2, rx_bytes=1)
    roots = Roots.under(str(tmp_path))
    assert interface_names(roots) == ["eth0"]
    assert list(read_links(roots, ["eth0", "gone0"])) == ["eth0"]
