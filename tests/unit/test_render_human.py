"""The human report on a terminal: fixes indented under their finding, and the next command last."""

from __future__ import annotations

import json

from guestcheck.facts import Facts, Host, Virt
from guestcheck.findings import Finding, Severity, Status
from guestcheck.render import render_for
from guestcheck.render.human import render
from guestcheck.report import Report

HEREDOC = ("sysctl -w net.netfilter.nf_conntrack_max=128\ncat > /etc/sysctl.d/90-x.conf <<'EOF'\n"
           "net.netfilter.nf_conntrack_max = 128\nEOF")


def render_json(r: Report) -> str:
    return render_for(r, "json", to_terminal=False)


def report(*findings: Finding) -> Report:
    facts = Facts(host=Host(vcpus=2, kernel="6.1"), virt=Virt(hypervisor="kvm"))
    return Report(facts, list(findings), Status.WARNING)


def test_a_multi_line_guest_fix_is_indented_under_its_finding_and_json_keeps_it_as_is():
    f = Finding("SOFTIRQ-NO-RPS", Severity.WARNING, "eth0", "one queue", fix="echo f > a\necho f > b",
                fix_on="guest")
    lines = render(report(f)).splitlines()
    at = lines.index("  WARNING  SOFTIRQ-NO-RPS [eth0] one queue")
    assert lines[at + 1:at + 4] == ["           fix, in the guest:", "             echo f > a",
                                    "             echo f > b"]
    assert json.loads(render_json(report(f)))["findings"][0]["fix"] == "echo f > a\necho f > b"


def test_an_indented_heredoc_says_where_the_pasteable_fix_is():
    f = Finding("CONNTRACK-TABLE-FULL", Severity.WARNING, "conntrack", "80% full", fix=HEREDOC, fix_on="guest")
    text = render(report(f))
    assert "take `fix` from `guestcheck doctor --json`, where the heredoc's end marker starts its line" in text
    assert "\nEOF" not in text and "\n             EOF\n" in text  # nothing at column 0 inside the report
    assert json.loads(render_json(report(f)))["findings"][0]["fix"] == HEREDOC  # pasteable: `sh -c "$fix"`


def test_a_host_fix_and_a_one_line_fix_keep_their_shape():
    host = Finding("NIC-EMULATED", Severity.CRITICAL, "ens2", "e1000", fix="libvirt: a\nQEMU: b", fix_on="host")
    one = Finding("OFFLOAD-RXCSUM-OFF", Severity.WARNING, "ens2", "RX checksum off", fix="ethtool -K ens2 rx on",
                  fix_on="guest")
    text = render(report(host, one))
    assert "           fix, on the host:\n             libvirt: a\n             QEMU: b\n" in text
    assert "           fix: ethtool -K ens2 rx on\n" in text


def test_the_report_ends_with_the_tune_command_when_a_finding_has_one():
    host = Finding("NIC-EMULATED", Severity.CRITICAL, "ens2", "e1000", fix="QEMU: b", fix_on="host")
    off = Finding("OFFLOAD-RXCSUM-OFF", Severity.WARNING, "ens2", "RX checksum off", fix="ethtool -K ens2 rx on",
                  fix_on="guest")
    assert render(report(host, off)).splitlines()[-1] == "next: guestcheck tune offloads ens2"
    rps = Finding("QUEUES-SINGLE-VIRTIO", Severity.WARNING, "eth 0", "one queue", fix="guestcheck tune rps 'eth 0'",
                  fix_on="guest")
    assert render(report(host, rps)).splitlines()[-1] == "next: guestcheck tune rps 'eth 0'"


def test_otherwise_the_report_ends_with_explain_for_the_worst_finding():
    host = Finding("NIC-EMULATED", Severity.CRITICAL, "ens2", "e1000", fix="QEMU: b", fix_on="host")
    warn = Finding("PATH-MTU-MISMATCH", Severity.WARNING, "ens2", "mtu", fix="ip link set ens2 mtu 1500",
                   fix_on="guest")
    assert render(report(host, warn)).splitlines()[-1] == "next: guestcheck explain NIC-EMULATED"
    ok = Finding("NIC-PARAVIRTUAL", Severity.OK, "eth0", "virtio")
    info = Finding("RING-RX-SMALL", Severity.INFO, "eth0", "small", fix="ethtool -G eth0 rx 1024", fix_on="guest")
    assert "next:" not in render(report(ok, info), verbose=True)  # nothing needs attention: no next command


def test_problems_are_shown_by_their_kind():
    """Denied sources are gathered in one note, by their source; other problems each get their own line."""
    from guestcheck.facts import Problem

    facts = Facts(host=Host(vcpus=2, kernel="6.1"), problems=[
        Problem("denied", "/proc/1/environ", "names the container manager; run as root"),
        Problem("note", "nics", "/sys/class/net is not readable: is sysfs mounted?"),
        Problem("denied", "/sys/firmware/acpi/tables/DSDT", "tells Firecracker from other KVM hosts; run as root")])
    text = render(Report(facts, [], Status.UNKNOWN))
    assert ("note: not run as root, could not read /proc/1/environ, /sys/firmware/acpi/tables/DSDT (run as root "
            "for a full report)") in text
    assert "note: /sys/class/net is not readable: is sysfs mounted?" in text
    assert "permission denied" not in text
