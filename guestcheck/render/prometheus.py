"""The node_exporter textfile format: one gauge per finding and the overall status, for fleet dashboards.

node_exporter's textfile collector reads every `*.prom` file in its directory on each scrape and
rejects a whole file that is malformed, has client-side timestamps or repeats a series, so this
renderer escapes every label value, never writes timestamps and emits each (id, subject) once.
"""

from __future__ import annotations

import datetime
import errno
import os
from typing import Optional

from guestcheck.atomicfile import write_output
from guestcheck.drivercounters import ALLOWANCE_GAUGE, INTERFACE_COUNTERS, curated
from guestcheck.findings import Finding
from guestcheck.report import Report
from guestcheck.text import escape_control

TEXTFILE_NAME = "guestcheck.prom"
DEFAULT_TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's prometheus-node-exporter default

_METRICS = {
    "guestcheck_info": (
        "Always 1: the guestcheck version and the tuning profile applied last (empty: none, or not known)."),
    "guestcheck_check_severity": (
        "Severity of each guestcheck finding (0 ok, 1 info, 2 warning, 3 critical), labelled with the "
        "finding id, its subject and the severity name. See `guestcheck explain ID`."),
    "guestcheck_status": (
        "Overall guestcheck doctor status as its exit code (0 ok, 1 warning, 2 critical, 3 unknown)."),
    "guestcheck_findings": "Number of guestcheck findings of each severity.",
    "guestcheck_last_run_timestamp_seconds": "When guestcheck collected the facts, in seconds since the epoch.",
    "guestcheck_conntrack_entries": "Connection tracking entries now (net.netfilter.nf_conntrack_count).",
    "guestcheck_conntrack_max": "Connection tracking table limit (net.netfilter.nf_conntrack_max).",
    "guestcheck_conntrack_drop_total": (
        "New connections conntrack refused because its table was full, summed over CPUs (32-bit kernel counters)."),
    "guestcheck_conntrack_early_drop_total": (
        "Conntrack entries evicted early to make room in a full table, summed over CPUs."),
    "guestcheck_conntrack_insert_failed_total": (
        "Conntrack entries that failed to insert (a race, or a full table), summed over CPUs."),
}
_NIC_METRICS = {
    **{f"guestcheck_nic_{c}_total": f"The interface's {c} (/sys/class/net/IFACE/statistics/{c})."
       for c in INTERFACE_COUNTERS},
    "guestcheck_nic_allowance_exceeded_total": (
        "Packets the cloud provider queued or dropped because the instance exceeded an allowance "
        "(AWS ENA bw_in, bw_out, pps, conntrack, linklocal _allowance_exceeded)."),
    "guestcheck_nic_conntrack_allowance_available": (
        "Tracked connections the instance can still open before its allowance (AWS ENA "
        "conntrack_allowance_available)."),
    "guestcheck_nic_driver_drops_total": (
        "Drops and stops the driver counts, per queue where it counts per queue (virtio-net drops and "
        "xdp_tx_drops, ENA tx_queue_stop, netvsc rx_no_memory and tx_no_space)."),
}
_QDISC = "labelled with the interface, the qdisc kind, its handle and its parent, as `tc -s qdisc` shows them"
# The loss ledger's curated series (README: "The loss ledger"): name -> help; the nstat counters' names after it
_LEDGER_METRICS = {
    "guestcheck_qdisc_drops_total": f"Packets a qdisc or class dropped ({_QDISC}; 32-bit kernel counter).",
    "guestcheck_qdisc_overlimits_total": f"Times a shaper held packets back over its rate ({_QDISC}).",
    "guestcheck_qdisc_requeues_total": f"Packets a qdisc put back because the device was busy ({_QDISC}).",
    "guestcheck_qdisc_backlog_bytes": f"Bytes queued in a qdisc when guestcheck read it ({_QDISC}).",
    "guestcheck_qdisc_rate_bytes_per_second": f"The rate a shaper caps traffic at ({_QDISC}).",
    "guestcheck_softnet_dropped_total": "Packets a CPU dropped because its backlog was full (softnet_stat).",
    "guestcheck_softnet_time_squeeze_total": "Times a CPU's receive softirq ran out of budget (softnet_stat).",
}
LEDGER_COUNTERS = {  # series -> (nstat names, by family label where there are two)
    "guestcheck_ip_in_discards_total": ("IP packets discarded on the way in (IpInDiscards).",
                                        {"": "IpInDiscards"}),
    "guestcheck_ip_out_discards_total": ("IP packets discarded on the way out (IpOutDiscards).",
                                         {"": "IpOutDiscards"}),
    "guestcheck_ip_reverse_path_filter_drops_total": ("Packets the reverse-path filter dropped "
                                                      "(TcpExtIPReversePathFilter).",
                                                      {"": "TcpExtIPReversePathFilter"}),
    "guestcheck_udp_receive_buffer_errors_total": ("UDP datagrams dropped on a full receive buffer "
                                                   "(UdpRcvbufErrors, Udp6RcvbufErrors).",
                                                   {"ipv4": "UdpRcvbufErrors", "ipv6": "Udp6RcvbufErrors"}),
    "guestcheck_udp_send_buffer_errors_total": ("UDP sends failed on a full send buffer or queue "
                                                "(UdpSndbufErrors, Udp6SndbufErrors).",
                                                {"ipv4": "UdpSndbufErrors", "ipv6": "Udp6SndbufErrors"}),
    "guestcheck_udp_no_port_total": ("UDP datagrams to ports nothing listens on (UdpNoPorts, Udp6NoPorts).",
                                     {"ipv4": "UdpNoPorts", "ipv6": "Udp6NoPorts"}),
    "guestcheck_tcp_sent_segments_total": ("TCP segments sent (TcpOutSegs).", {"": "TcpOutSegs"}),
    "guestcheck_tcp_retransmitted_segments_total": ("TCP segments retransmitted (TcpRetransSegs).",
                                                    {"": "TcpRetransSegs"}),
    "guestcheck_tcp_spurious_retransmits_total": ("TCP retransmissions the peer's DSACKs showed were spurious "
                                                  "(TcpExtTCPDSACKRecv + TcpExtTCPDSACKOfoRecv).",
                                                  {"": "TcpExtTCPDSACKRecv+TcpExtTCPDSACKOfoRecv"}),
    "guestcheck_tcp_listen_overflows_total": ("Handshakes dropped on a full accept queue (TcpExtListenOverflows).",
                                              {"": "TcpExtListenOverflows"}),
    "guestcheck_tcp_listen_drops_total": ("Handshakes dropped on the way in (TcpExtListenDrops).",
                                          {"": "TcpExtListenDrops"}),
    "guestcheck_tcp_memory_pressures_total": ("Times TCP entered memory pressure (TcpExtTCPMemoryPressures).",
                                              {"": "TcpExtTCPMemoryPressures"}),
    "guestcheck_tcp_prune_called_total": ("Receive queues TCP had to prune for memory (TcpExtPruneCalled).",
                                          {"": "TcpExtPruneCalled"}),
}
_LEDGER_METRICS.update({name: text for name, (text, _) in LEDGER_COUNTERS.items()})
# Only with doctor --drops: one window's counts, not counters (a new window starts from zero), so gauges
_DROP_METRICS = {
    "guestcheck_drop_reason_packets": ("Packets the kernel dropped with each reason during doctor --drops' window "
                                       "(skb:kfree_skb, machine-wide: every network namespace)."),
    "guestcheck_drop_reason_window_seconds": "The length of doctor --drops' window.",
}
_METRICS.update(_NIC_METRICS)
_METRICS.update(_LEDGER_METRICS)
_METRICS.update(_DROP_METRICS)
_COUNTERS = {"guestcheck_conntrack_drop_total", "guestcheck_conntrack_early_drop_total",
             "guestcheck_conntrack_insert_failed_total"} | {n for n in _NIC_METRICS if n.endswith("_total")} | {
                 n for n in _LEDGER_METRICS if n.endswith("_total")}


def escape_label_value(value: str) -> str:
    """Backslash, double quote and line feed are the three characters the format escapes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_text(value: str) -> str:
    """A label value as written: other control characters shown, not sent (the file may be printed on a
    terminal), and lone surrogates, which are not UTF-8, spelled out; then the format's own escapes."""
    return escape_label_value(value if value.isprintable() else escape_control(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{label_text(v)}"' for k, v in labels.items()) + "}"


def _header(name: str) -> list[str]:
    kind = "counter" if name in _COUNTERS else "gauge"
    return [f"# HELP {name} {_escape_help(_METRICS[name])}", f"# TYPE {name} {kind}"]


def _unique(findings: list[Finding]) -> list[Finding]:
    """One series per (id, subject): a repeated one would make node_exporter drop the whole file."""
    worst: dict[tuple[str, str], Finding] = {}
    for f in findings:
        key = (f.id, f.subject)
        if key not in worst or f.severity > worst[key].severity:
            worst[key] = f
    return list(worst.values())


def _timestamp(collected_at: str) -> Optional[float]:
    try:
        return datetime.datetime.fromisoformat(collected_at).timestamp()
    except (TypeError, ValueError):
        return None


def render(report: Report) -> str:
    from guestcheck import __version__

    lines = _header("guestcheck_info")
    lines.append(f"guestcheck_info{_labels(version=__version__, profile=report.profile or '')} 1")
    lines += _header("guestcheck_check_severity")
    findings = _unique(report.findings)
    for f in findings:
        labels = _labels(id=f.id, subject=f.subject, severity=f.severity.label)
        lines.append(f"guestcheck_check_severity{labels} {int(f.severity)}")
    lines += _header("guestcheck_findings")
    for label in ("ok", "info", "warning", "critical"):
        count = sum(1 for f in findings if f.severity.label == label)
        lines.append(f"guestcheck_findings{_labels(severity=label)} {count}")
    lines += _header("guestcheck_status")
    lines.append(f"guestcheck_status{_labels(status=report.status.label)} {report.status.value}")
    when = _timestamp(report.facts.collected_at)
    if when is not None:
        lines += _header("guestcheck_last_run_timestamp_seconds")
        lines.append(f"guestcheck_last_run_timestamp_seconds {when:.0f}")
    lines += _conntrack_lines(report)
    lines += nic_counter_lines(report)
    lines += ledger_lines(report)
    lines += drop_reason_lines(report)
    return "\n".join(lines) + "\n"


def drop_reason_lines(report: Report) -> list[str]:
    """Only with doctor --drops, and only reasons seen: a gauge per reason over the window, and the window."""
    d = report.facts.drops
    if d is None or not d.available:
        return []
    lines = [*_header("guestcheck_drop_reason_window_seconds"), f"guestcheck_drop_reason_window_seconds {d.seconds}"]
    by_reason = d.by_reason()
    if by_reason:
        lines += _header("guestcheck_drop_reason_packets")
        lines += [f"guestcheck_drop_reason_packets{_labels(reason=r)} {n}" for r, n in sorted(by_reason.items())]
    return lines


def ledger_lines(report: Report) -> list[str]:
    """The loss ledger's curated series: since-boot totals (PromQL's increase() gives the window), qdisc
    gauges, softnet per CPU. Nothing for a counter the facts do not have (no series beats a fake 0)."""
    f = report.facts
    series: dict[str, dict[str, int]] = {name: {} for name in _LEDGER_METRICS}
    if f.softirq is not None:
        for cpu in f.softirq.cpus:
            series["guestcheck_softnet_dropped_total"][_labels(cpu=str(cpu.cpu))] = cpu.dropped_since_boot
            series["guestcheck_softnet_time_squeeze_total"][_labels(cpu=str(cpu.cpu))] = cpu.squeezed_since_boot
    ledger = f.ledger
    if ledger is not None:
        for q in ledger.qdiscs:
            labels = _labels(interface=q.device, kind=q.kind, handle=q.handle, parent=q.parent)
            for counter in ("drops", "overlimits", "requeues"):
                if counter in q.counters:
                    series[f"guestcheck_qdisc_{counter}_total"].setdefault(labels, q.counters[counter].total)
            series["guestcheck_qdisc_backlog_bytes"].setdefault(labels, q.backlog_bytes)
            if q.rate_bytes_per_s:
                series["guestcheck_qdisc_rate_bytes_per_second"].setdefault(labels, q.rate_bytes_per_s)
        for name, (_, by_family) in LEDGER_COUNTERS.items():
            for family, counters in by_family.items():
                parts = [ledger.counters.get(c) for c in counters.split("+")]
                if all(p is not None for p in parts):
                    labels = _labels(family=family) if family else ""
                    series[name][labels] = sum(p.total for p in parts if p is not None)
    lines: list[str] = []
    for name, samples in series.items():
        if samples:
            lines += _header(name)
            lines += [f"{name}{labels} {value}" for labels, value in samples.items()]
    return lines


def nic_counter_lines(report: Report) -> list[str]:
    """The curated counters of each NIC (guestcheck/drivercounters.py), never every `ethtool -S` name: a
    handful of series per interface, plus one per queue for the per-queue drop counters."""
    series: dict[str, dict[str, int]] = {name: {} for name in _NIC_METRICS}  # name -> labels -> value
    for c in report.facts.nic_counters:
        for counter in INTERFACE_COUNTERS:
            if counter in c.interface:
                series[f"guestcheck_nic_{counter}_total"].setdefault(_labels(interface=c.nic),
                                                                      c.interface[counter].total)
        for name, rate in sorted(c.driver.items()):
            d = curated(name)
            if d is None:
                continue
            if d.kind == "allowance":
                series["guestcheck_nic_allowance_exceeded_total"].setdefault(
                    _labels(interface=c.nic, allowance=d.what), rate.total)
            elif d.kind in ("queue-drop", "queue-stop", "device-drop"):
                labels = (_labels(interface=c.nic, queue=d.queue, counter=d.what) if d.queue
                          else _labels(interface=c.nic, counter=d.what))
                series["guestcheck_nic_driver_drops_total"].setdefault(labels, rate.total)
        if ALLOWANCE_GAUGE in c.gauges:
            series["guestcheck_nic_conntrack_allowance_available"].setdefault(
                _labels(interface=c.nic), c.gauges[ALLOWANCE_GAUGE])
    lines: list[str] = []
    for name, samples in series.items():  # a repeated series (two spellings of one counter) is written once
        if samples:
            lines += _header(name)
            lines += [f"{name}{labels} {value}" for labels, value in samples.items()]
    return lines


def _conntrack_lines(report: Report) -> list[str]:
    """The table's fill and drop counters, only where conntrack is loaded (no series beats a fake 0)."""
    ct = report.facts.conntrack
    if ct is None or not ct.loaded:
        return []
    lines: list[str] = []
    for name, value in (("guestcheck_conntrack_entries", ct.count), ("guestcheck_conntrack_max", ct.max)):
        if value is not None:
            lines += _header(name)
            lines.append(f"{name} {value}")
    for column in ("drop", "early_drop", "insert_failed"):
        if column in ct.since_boot:
            name = f"guestcheck_conntrack_{column}_total"
            lines += _header(name)
            lines.append(f"{name} {ct.since_boot[column]}")
    return lines


def write_textfile(text: str, directory: str) -> str:
    """Atomically (re)place guestcheck.prom, always 0644, in node_exporter's textfile directory; returns its path.

    The directory is never made: a typo must not grow a tree that node_exporter never reads."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "no such directory (create it, or name node_exporter's "
                                "--collector.textfile.directory)", directory)
    path = os.path.join(directory, TEXTFILE_NAME)
    write_output(path, text, 0o644, keep_mode=False)
    return path
