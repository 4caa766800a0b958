"""The driver counters guestcheck judges and exports, out of the hundreds `ethtool -S` prints, known by name.

One table for the collector (which keeps only these, sampled), the checks and the Prometheus renderer, so the
three agree on what a name means. Names are the drivers' own, as `ethtool -S` prints them:
- AWS ENA (amzn/amzn-drivers kernel/linux/ena/ena_ethtool.c, `ena_hw_stats_strings` and `ena_queue_strings`;
  ENA_Linux_Best_Practices.rst): the instance's allowances, `queue_N_tx_queue_stop`. The allowance counters need
  ENA 2.2.10 or later, `conntrack_allowance_available` 2.8.1 (AWS: "Monitor network performance for ENA").
- virtio-net (drivers/net/virtio_net.c, `virtnet_rq_stats_desc`/`virtnet_sq_stats_desc`): `rx_queue_N_drops`,
  `tx_queue_N_xdp_tx_drops`; kernels from 6.10 print the same counters as `rxN_drops`, `txN_xdp_tx_drops`.
  veth (drivers/net/veth.c) uses the older spelling for its own `rx_queue_N_drops`.
- Hyper-V netvsc (drivers/net/hyperv/netvsc_drv.c, `netvsc_stats`): `rx_no_memory`, `tx_no_space`, device-wide.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Optional

from guestcheck.quantities import parse_int

ALLOWANCE_GAUGE = "conntrack_allowance_available"

# /sys/class/net/IFACE/statistics: the kernel's drop and error counters (64-bit), in the order they are shown
# (rx_nohandler: frames no protocol took on a device that delivers to exact matches only, a bond's inactive
# slave; tx_aborted_errors and tx_carrier_errors: parts of tx_errors that say why the send failed)
INTERFACE_COUNTERS = ("rx_dropped", "rx_missed_errors", "rx_fifo_errors", "rx_over_errors", "rx_nohandler",
                      "tx_dropped", "tx_errors", "tx_aborted_errors", "tx_carrier_errors")
# the counters already included in another (tx_errors): a sum of drops leaves them out
INCLUDED_IN_TX_ERRORS = ("tx_aborted_errors", "tx_carrier_errors")
# the ones that mean "the receive ring was full" (the NIC had nowhere to put a frame)
RING_OVERFLOW = ("rx_missed_errors", "rx_fifo_errors", "rx_over_errors")


@dataclass(frozen=True)
class DriverCounter:
    """What one curated driver counter is."""

    kind: str  # allowance | gauge | queue-drop | queue-stop | device-drop
    what: str  # bw_in, pps, ... for allowances; drops, xdp_tx_drops, tx_queue_stop, rx_no_memory, tx_no_space
    queue: Optional[str] = None  # the sysfs queue it belongs to ("rx-0", "tx-3"); None when device-wide

    @property
    def direction(self) -> str:
        if self.queue:
            return self.queue.split("-", 1)[0]
        return "tx" if self.what.startswith(("tx", "bw_out")) else "rx"


_ALLOWANCE = re.compile(r"(bw_in|bw_out|pps|conntrack|linklocal)_allowance_exceeded")
_PER_QUEUE = (
    (re.compile(r"rx_queue_([0-9]{1,5})_drops|rx([0-9]{1,5})_drops"), "queue-drop", "drops", "rx"),
    (re.compile(r"tx_queue_([0-9]{1,5})_xdp_tx_drops|tx([0-9]{1,5})_xdp_tx_drops"), "queue-drop", "xdp_tx_drops", "tx"),
    (re.compile(r"queue_([0-9]{1,5})_tx_queue_stop()"), "queue-stop", "tx_queue_stop", "tx"),
)
_DEVICE_DROPS = ("rx_no_memory", "tx_no_space")


@functools.lru_cache(maxsize=4096)  # the same names repeat on every interface of a driver
def curated(name: str) -> Optional[DriverCounter]:
    """The meaning of a driver counter guestcheck keeps, or None for the many it leaves out."""
    match = _ALLOWANCE.fullmatch(name)
    if match:
        return DriverCounter("allowance", match.group(1))
    if name == ALLOWANCE_GAUGE:
        return DriverCounter("gauge", "conntrack_available")
    if name in _DEVICE_DROPS:
        return DriverCounter("device-drop", name)
    for pattern, kind, what, direction in _PER_QUEUE:
        match = pattern.fullmatch(name)
        if match:
            number = match.group(1) or match.group(2)
            return DriverCounter(kind, what, f"{direction}-{parse_int(number)}")
    return None
