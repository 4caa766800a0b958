"""The command the human report ends with (guestcheck/nextstep.py)."""

from __future__ import annotations

from guestcheck.findings import Finding, Severity
from guestcheck.nextstep import next_command, tune_command


def test_a_tune_line_in_a_guest_fix_is_the_next_command():
    f = Finding("QUEUES-SINGLE-VIRTIO", Severity.WARNING, "eth0", "one queue",
                fix="guestcheck tune rps eth0", fix_on="guest")
    assert next_command([f]) == "guestcheck tune rps eth0"


def test_offloads_and_rings_map_to_their_tuner_command_quoted():
    ring = Finding("RING-RX-DROPS", Severity.WARNING, "a;b", "ring full", fix="ethtool -G 'a;b' rx 4096",
                   fix_on="guest")
    assert next_command([ring]) == "guestcheck tune rings 'a;b'"  # quoted: the name came from the kernel
    tso = Finding("OFFLOAD-TSO-OFF", Severity.WARNING, "eth0", "TSO off", fix="ethtool -K eth0 tso on",
                  fix_on="guest")
    assert tune_command(tso) == "guestcheck tune offloads eth0"


def test_a_host_fix_or_no_fix_has_no_tune_command():
    backend = Finding("OFFLOAD-TSO-OFF", Severity.WARNING, "eth0", "TSO off [fixed]", fix="QEMU: vhost=on",
                      fix_on="host")
    held = Finding("OFFLOAD-GRO-OFF", Severity.WARNING, "eth0", "GRO held off", fix="", fix_on="")
    assert tune_command(backend) is None and tune_command(held) is None
    assert next_command([backend, held]) == "guestcheck explain OFFLOAD-TSO-OFF"


def test_the_worst_finding_is_explained_and_nothing_below_warning_counts():
    crit = Finding("NIC-EMULATED", Severity.CRITICAL, "ens2", "e1000", fix="QEMU: b", fix_on="host")
    info = Finding("RING-RX-SMALL", Severity.INFO, "ens2", "small", fix="ethtool -G ens2 rx 4096", fix_on="guest")
    assert next_command([crit, info]) == "guestcheck explain NIC-EMULATED"
    assert next_command([info]) is None
