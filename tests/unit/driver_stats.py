"""`ethtool -S` name sets of real drivers, built from the drivers' own string tables, for fake machines.

Each builder names its source. Values are 0 unless a test sets them.
"""

from __future__ import annotations

# amzn/amzn-drivers kernel/linux/ena/ena_ethtool.c: ena_stats_global_strings, ena_hw_stats_strings (customer
# metrics, ENA >= 2.8.1 for conntrack_allowance_available), ena_stats_tx_strings / ena_stats_rx_strings as
# "queue_%u_tx_%s" / "queue_%u_rx_%s" (ena_queue_strings), ena_stats_ena_com_admin_strings as "ena_admin_q_%s".
ENA_GLOBAL = ("tx_timeout", "suspend", "resume", "wd_expired", "interface_up", "interface_down", "admin_q_pause",
              "reset_fail")
ENA_METRICS = ("bw_in_allowance_exceeded", "bw_out_allowance_exceeded", "pps_allowance_exceeded",
               "conntrack_allowance_exceeded", "linklocal_allowance_exceeded", "conntrack_allowance_available")
ENA_TX = ("cnt", "bytes", "queue_stop", "queue_wakeup", "dma_mapping_err", "linearize", "linearize_failed",
          "napi_comp", "tx_poll", "doorbells", "prepare_ctx_err", "bad_req_id", "llq_buffer_copy", "missed_tx",
          "unmask_interrupt")
ENA_RX = ("cnt", "bytes", "rx_copybreak_pkt", "csum_good", "refil_partial", "csum_bad", "page_alloc_fail",
          "skb_alloc_fail", "dma_mapping_err", "bad_desc_num", "bad_req_id", "empty_rx_ring", "csum_unchecked",
          "xdp_aborted", "xdp_drop", "xdp_pass", "xdp_tx", "xdp_invalid", "xdp_redirect", "lpc_warm_up", "lpc_full",
          "lpc_wrong_numa")
ENA_ADMIN = ("aborted_cmd", "submitted_cmd", "completed_cmd", "out_of_space", "no_completion")


def ena(queues: int = 8, metrics: bool = True, **values: int) -> dict[str, int]:
    """An ENA's counters; `metrics=False` is a driver older than 2.2.10, which has no allowance counters."""
    names = list(ENA_GLOBAL) + (list(ENA_METRICS) if metrics else [])
    for q in range(queues):
        names += [f"queue_{q}_tx_{n}" for n in ENA_TX] + [f"queue_{q}_rx_{n}" for n in ENA_RX]
    names += [f"ena_admin_q_{n}" for n in ENA_ADMIN]
    out = dict.fromkeys(names, 0)
    out.update(values)
    return out


# drivers/net/virtio_net.c virtnet_rq_stats_desc / virtnet_sq_stats_desc, "rx_queue_%u_%s" / "tx_queue_%u_%s"
# up to Linux 6.9 (the Debian 12 guest's 6.1 prints these).
VIRTIO_RQ = ("packets", "bytes", "drops", "xdp_packets", "xdp_tx", "xdp_redirects", "xdp_drops", "kicks")
VIRTIO_SQ = ("packets", "bytes", "xdp_tx", "xdp_tx_drops", "kicks", "tx_timeouts")


def virtio_old(queues: int = 2, **values: int) -> dict[str, int]:
    names = [f"rx_queue_{q}_{n}" for q in range(queues) for n in VIRTIO_RQ]
    names += [f"tx_queue_{q}_{n}" for q in range(queues) for n in VIRTIO_SQ]
    out = dict.fromkeys(names, 0)
    out.update(values)
    return out


def virtio_new(queues: int = 2, **values: int) -> dict[str, int]:
    """Linux 6.10+ ("rx%u_%s", packets and bytes moved to netlink qstats): what `ethtool -S eth0` printed on this
    machine's 6.18 kernel, device-wide sums first."""
    rq = ("drops", "xdp_packets", "xdp_tx", "xdp_redirects", "xdp_drops", "kicks")
    sq = ("xdp_tx", "xdp_tx_drops", "kicks", "tx_timeouts")
    names = [f"rx_{n}" for n in rq] + [f"tx_{n}" for n in sq]
    for q in range(queues):
        names += [f"rx{q}_{n}" for n in rq] + [f"tx{q}_{n}" for n in sq]
    out = dict.fromkeys(names, 0)
    out.update(values)
    return out


# drivers/net/hyperv/netvsc_drv.c netvsc_stats[], vf_stats[], "tx_queue_%u_packets"..., pcpu_stats "cpu%u_..."
NETVSC = ("tx_scattered", "tx_no_memory", "tx_no_space", "tx_too_big", "tx_busy", "tx_send_full", "rx_comp_busy",
          "rx_no_memory", "stop_queue", "wake_queue", "vlan_error", "vf_rx_packets", "vf_rx_bytes", "vf_tx_packets",
          "vf_tx_bytes", "vf_tx_dropped")


def netvsc(queues: int = 2, cpus: int = 2, **values: int) -> dict[str, int]:
    names = list(NETVSC)
    for q in range(queues):
        names += [f"tx_queue_{q}_packets", f"tx_queue_{q}_bytes", f"rx_queue_{q}_packets", f"rx_queue_{q}_bytes"]
    for c in range(cpus):
        names += [f"cpu{c}_{n}" for n in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "vf_rx_packets",
                                            "vf_rx_bytes", "vf_tx_packets", "vf_tx_bytes")]
    out = dict.fromkeys(names, 0)
    out.update(values)
    return out
