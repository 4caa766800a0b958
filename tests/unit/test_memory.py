"""Memory guarantees on fake trees: balloons, virtio-mem, Hyper-V, Xen, VMware, OpenVZ, cgroups, overcommit."""

from __future__ import annotations

import pytest

from guestcheck.checks.memory import run
from guestcheck.collect.memory import collect_memory, parse_beancounters, parse_key_numbers
from guestcheck.doctor import build_report
from guestcheck.facts import Facts, facts_from_dict
from guestcheck.findings import Severity
from guestcheck.judge.memory import fmt_bytes, memory_verdict
from guestcheck.render.human import render
from tests.fakemachine import FakeMachine, add_virtio_device, from_snapshot, load_snapshot, snapshot_names
from tests.judged import with_recorded

GiB = 1 << 30
MiB = 1 << 20


def meminfo(total_kb: int = 8 * 1024 * 1024, swap_kb: int = 0, committed_kb: int = 1024 * 1024,
            limit_kb: int = 4 * 1024 * 1024, extra: str = "") -> str:
    return (f"MemTotal:       {total_kb} kB\nMemFree:        {total_kb // 2} kB\nMemAvailable:   {total_kb // 2} kB\n"
            f"SwapTotal:      {swap_kb} kB\nSwapFree:       {swap_kb} kB\nCommitLimit:    {limit_kb} kB\n"
            f"Committed_AS:   {committed_kb} kB\nHugePages_Total:       0\n{extra}")


@pytest.fixture
def machine(tmp_path) -> FakeMachine:
    m = FakeMachine(tmp_path)
    m.write("proc/meminfo", meminfo())
    m.write("proc/sys/vm/overcommit_memory", "0\n")
    m.write("proc/sys/vm/overcommit_ratio", "50\n")
    return m


def judged(m: FakeMachine, **facts_changes):
    facts = m.collect()
    for k, v in facts_changes.items():
        setattr(facts.virt, k, v)
    findings = run(*with_recorded(facts))
    return facts, memory_verdict(facts), {f.id: f for f in findings}


# -- the captures -----------------------------------------------------------------------------------------

SNAPSHOT_VERDICTS = {
    "qemu-e1000": True,
    "qemu-rtl8139": True,
    "qemu-virtio": True,
    "qemu-virtio_tap_mq": False,  # -device virtio-balloon
    "cloud-microvm-virtio": False,  # a bound virtio-balloon
}


@pytest.mark.parametrize("name", snapshot_names())
def test_each_capture_gets_its_verdict(name, tmp_path):
    assert name in SNAPSHOT_VERDICTS, f"new capture {name}: add its memory verdict"
    snap = load_snapshot(name)
    facts = from_snapshot(name, tmp_path).collect()
    verdict = memory_verdict(facts)
    mem_total = int(snap["meminfo"].split()[1]) * 1024
    assert verdict.guaranteed is SNAPSHOT_VERDICTS[name], verdict.reasons
    assert verdict.total_bytes == verdict.mem_total_bytes == mem_total
    assert facts.memory.overcommit_memory is None  # the captures hold the sysctl, not a /proc/sys tree
    ids = {f.id for f in build_report(facts).findings}
    assert "MEM-GUARANTEED" in ids
    assert ("MEM-BALLOON" in ids) is (SNAPSHOT_VERDICTS[name] is False)
    assert "MEM-VIRTIO-MEM" not in ids  # cloud-microvm registers virtio_mem but has no such device
    if verdict.guaranteed is False:
        assert verdict.reasons[0].startswith("virtio-balloon bound")
    # the single /proc/stat reading gives steal since boot, and no interval
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, snap["proc_stat_cpu"][0].split()[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal
    assert facts.cpu_steal.since_boot_percent == round(100 * steal / total, 2)
    assert facts.cpu_steal.percent is None


def test_microvm_capture_reads_inflation_from_meminfo_balloon(tmp_path):
    facts = from_snapshot("cloud-microvm-virtio", tmp_path).collect()
    balloon = next(b for b in facts.memory.balloons if b.kind == "virtio-balloon")
    assert (balloon.device, balloon.bound, balloon.inflated_bytes) == ("virtio0", True, 0)
    assert balloon.inflated_source.endswith("/meminfo Balloon")
    finding = next(f for f in run(*with_recorded(facts)) if f.id == "MEM-BALLOON")
    assert finding.severity is Severity.INFO and "0 B inflated now" in finding.summary


def test_tap_mq_capture_has_no_inflation_source(tmp_path):
    facts = from_snapshot("qemu-virtio_tap_mq", tmp_path).collect()
    balloon = next(b for b in facts.memory.balloons if b.kind == "virtio-balloon")
    assert balloon.device == "virtio1" and balloon.bound and balloon.inflated_bytes is None
    assert "inflation not visible" in memory_verdict(facts).reasons[0]


# -- virtio ------------------------------------------------------------------------------------------------

def test_inflated_virtio_balloon_from_debugfs_is_a_warning(machine):
    add_virtio_device(machine, "virtio3", 5, "virtio_balloon")
    machine.write("sys/devices/virtio-fake/virtio3/features", "0100" + "0" * 60 + "\n")
    machine.write("sys/kernel/debug/virtio-balloon", "InflatedTotal: 524288 kB\nInflatedFree: 0 kB\n")
    facts, verdict, found = judged(machine)
    b = facts.memory.balloons[0]
    assert (b.kind, b.bound, b.inflated_bytes, b.deflate_on_oom) == ("virtio-balloon", True, 512 * MiB, False)
    assert verdict.guaranteed is False and verdict.inflated_bytes == 512 * MiB
    assert found["MEM-BALLOON"].severity is Severity.WARNING
    assert "512 MiB inflated now, deflate-on-oom off" in found["MEM-BALLOON"].summary
    assert "<memballoon model='none'/>" in found["MEM-BALLOON"].fix and "--balloon 0" in found["MEM-BALLOON"].fix


def test_vmstat_counters_give_the_inflation_when_nothing_else_does(machine):
    add_virtio_device(machine, "virtio0", 5, "virtio_balloon")
    machine.write("proc/vmstat", "nr_free_pages 1\nballoon_inflate 1000\nballoon_deflate 200\nballoon_migrate 3\n")
    facts, _, _ = judged(machine)
    b = facts.memory.balloons[0]
    assert b.inflated_bytes == 800 * 4096 and b.inflated_source.endswith("vmstat balloon_inflate - balloon_deflate")


def test_unbound_balloon_device_does_not_take_memory(machine):
    add_virtio_device(machine, "virtio0", 5, None)  # device offered, driver not loaded
    facts, verdict, found = judged(machine)
    assert facts.memory.balloons[0].bound is False
    assert verdict.guaranteed is True and "MEM-BALLOON" not in found
    assert found["MEM-GUARANTEED"].severity is Severity.OK


def test_virtio_mem_bound_is_not_guaranteed_and_a_registered_driver_alone_is_nothing(machine):
    machine.write("sys/bus/virtio/drivers/virtio_mem/bind", "")
    assert judged(machine)[1].guaranteed is True
    add_virtio_device(machine, "virtio2", 0x18, "virtio_mem")
    _, verdict, found = judged(machine)
    assert verdict.guaranteed is False and "virtio-mem bound" in verdict.reasons[0]
    assert found["MEM-VIRTIO-MEM"].subject == "virtio2"


# -- Hyper-V, Xen, VMware ----------------------------------------------------------------------------------

def _hv_bound(m: FakeMachine) -> None:
    dev = "sys/devices/vmbus/1eccfd72-4b41-45ef-b73a-4a6e44c12924"
    m.write(f"{dev}/class_id", "{525074dc-8985-46e2-8057-a307dc18a502}\n")
    m.symlink("sys/bus/vmbus/drivers/hv_balloon/1eccfd72-4b41-45ef-b73a-4a6e44c12924", str(m.base / dev))
    m.symlink("sys/bus/vmbus/drivers/hv_balloon/module", str(m.base / "sys/module/hv_balloon"))


def test_hyperv_dynamic_memory_ballooned_out(machine):
    _hv_bound(machine)
    machine.write("sys/kernel/debug/hv-balloon",
                  "host_version          : 2.0\ncapabilities          : enabled hot_add\nstate                 : 1 "
                  "(Initialized)\npage_size             : 4096\npages_added           : 0\npages_onlined         : 0\n"
                  "pages_ballooned       : 2560\ntotal_pages_committed : 97790\nmax_dynamic_page_count: 268435456\n")
    facts, verdict, found = judged(machine, hypervisor="hyperv")
    b = facts.memory.balloons[0]
    assert (b.kind, b.bound, b.inflated_bytes, b.added_bytes) == ("hv-balloon", True, 10 * MiB, 0)
    assert verdict.guaranteed is False and "10.0 MiB ballooned out" in verdict.reasons[0]
    assert found["MEM-HV-BALLOON"].severity is Severity.WARNING
    assert "DynamicMemoryEnabled $false" in found["MEM-HV-BALLOON"].fix


def test_idle_hv_balloon_is_unknown_on_premises_and_neutral_on_azure(machine):
    _hv_bound(machine)
    _, verdict, found = judged(machine, hypervisor="hyperv")
    assert verdict.guaranteed is None and "whether Dynamic Memory is on is not visible" in verdict.reasons[0]
    assert found["MEM-HV-BALLOON"].severity is Severity.INFO
    _, verdict, found = judged(machine, hypervisor="hyperv", cloud="microsoft")
    assert verdict.guaranteed is True
    assert "Azure" in found["MEM-HV-BALLOON"].summary


def _xen(m: FakeMachine, target_kb: int, current_kb: int, low_kb: int = 0) -> None:
    base = "sys/devices/system/xen_memory/xen_memory0"
    m.write(f"{base}/target_kb", f"{target_kb}\n")
    m.write(f"{base}/info/current_kb", f"{current_kb}\n")
    m.write(f"{base}/info/low_kb", f"{low_kb}\n")
    m.write(f"{base}/info/high_kb", "0\n")


def test_xen_target_below_current_is_not_guaranteed(machine):
    _xen(machine, 2 * 1024 * 1024, 4 * 1024 * 1024, low_kb=1024 * 1024)
    _, verdict, found = judged(machine)
    assert verdict.guaranteed is False and verdict.inflated_bytes == GiB
    assert "target 2.0 GiB vs current 4.0 GiB" in verdict.reasons[0]
    assert found["MEM-XEN-BALLOON"].severity is Severity.WARNING and "xl mem-set" in found["MEM-XEN-BALLOON"].fix


def test_idle_xen_balloon_is_neutral(machine):
    _xen(machine, 4 * 1024 * 1024, 4 * 1024 * 1024)
    _, verdict, found = judged(machine)
    assert verdict.guaranteed is True
    assert found["MEM-XEN-BALLOON"].severity is Severity.INFO


def test_vmware_balloon_idle_is_unknown_and_holding_pages_is_not_guaranteed(machine):
    machine.write("proc/modules", "vmw_vmci 90112 1 vmw_vsock_vmci_transport, Live 0x0\n"
                                  "vmw_balloon 28672 0 - Live 0x0\n")
    _, verdict, found = judged(machine)
    assert verdict.guaranteed is None and "reservation is not visible" in verdict.reasons[0]
    assert found["MEM-VMW-BALLOON"].severity is Severity.INFO
    machine.write("sys/kernel/debug/vmmemctl",
                  "balloon capabilities: 0x1e\nused capabilities: 0x6\nis resetting: n\ntarget: 30000 pages\n"
                  "current: 25600 pages\nrateSleepAlloc: 2048 pages/sec\n\ntimer: 118\ntarget: 118 ( 0 failed)\n")
    facts, verdict, found = judged(machine)
    b = facts.memory.balloons[0]
    assert (b.target_bytes, b.current_bytes, b.inflated_bytes) == (30000 * 4096, 100 * MiB, 100 * MiB)
    assert verdict.guaranteed is False and found["MEM-VMW-BALLOON"].severity is Severity.WARNING
    assert "Reserve all guest memory" in found["MEM-VMW-BALLOON"].fix


# -- OpenVZ --------------------------------------------------------------------------------------------------

LONG_MAX = 9223372036854775807


def beancounters(physpages_failcnt: int = 17, tcpsndbuf_failcnt: int = 3, vmguarpages: int = 65536) -> str:
    """/proc/user_beancounters as an OpenVZ 7 container shows it, a host node's second container after it."""
    rows = [("kmemsize", 25346048, 27893760, LONG_MAX, LONG_MAX, 0), ("lockedpages", 0, 0, LONG_MAX, LONG_MAX, 0),
            ("privvmpages", 91834, 132056, LONG_MAX, LONG_MAX, 0),
            ("physpages", 131000, 131072, 0, 131072, physpages_failcnt),
            ("vmguarpages", 0, 0, vmguarpages, LONG_MAX, 0), ("oomguarpages", 40123, 41000, 65536, LONG_MAX, 0),
            ("tcpsndbuf", 1048576, 4194304, LONG_MAX, LONG_MAX, tcpsndbuf_failcnt),
            ("tcprcvbuf", 0, 0, LONG_MAX, LONG_MAX, 0), ("dummy", 0, 0, 0, 0, 0)]
    lines = ["Version: 2.5", f"{'uid':>10}  {'resource':<12}{'held':>21}{'maxheld':>21}{'barrier':>21}{'limit':>21}"
             f"{'failcnt':>21}"]
    for i, row in enumerate(rows):
        lines.append(f"{'101:' if i == 0 else '':>10}  {row[0]:<12}" + "".join(f"{v:>21}" for v in row[1:]))
    lines.append(f"{'102:':>10}  {'kmemsize':<12}" + "".join(f"{1:>21}" for _ in range(5)))
    return "\n".join(lines) + "\n"


BEANCOUNTERS = beancounters()


def test_beancounters_parse_the_first_container_only():
    uid, rows = parse_beancounters(BEANCOUNTERS)
    assert uid == "101"
    assert [r.resource for r in rows] == ["kmemsize", "lockedpages", "privvmpages", "physpages", "vmguarpages",
                                          "oomguarpages", "tcpsndbuf", "tcprcvbuf"]
    assert rows[3].limit == 131072 and rows[3].failcnt == 17


def test_beancounter_failures_and_partial_guarantee(machine):
    machine.write("proc/user_beancounters", BEANCOUNTERS)
    _, verdict, found = judged(machine, container="openvz")
    assert verdict.guaranteed is False
    assert "OpenVZ physpages refused allocations 17 times" in verdict.reasons
    assert "OpenVZ guarantees 256 MiB of 512 MiB (vmguarpages)" in verdict.reasons
    assert verdict.total_bytes == 512 * MiB  # physpages limit, below MemTotal
    f = found["MEM-BEANCOUNTERS"]
    assert f.severity is Severity.WARNING
    assert "physpages failcnt 17" in f.summary and "tcpsndbuf failcnt 3" in f.summary
    assert "--tcpsndbuf" in f.fix


def test_beancounters_without_failures_are_unknown(machine):
    machine.write("proc/user_beancounters", beancounters(physpages_failcnt=0, tcpsndbuf_failcnt=0, vmguarpages=131072))
    _, verdict, found = judged(machine, container="openvz")
    assert verdict.guaranteed is None and "node's memory is shared" in verdict.reasons[0]
    assert found["MEM-BEANCOUNTERS"].severity is Severity.INFO


def test_unreadable_beancounters_are_recorded_as_unknown(machine):
    machine.write("proc/user_beancounters/.keep", "")  # a directory: the read fails for a reason, not "missing"
    facts, _, _ = judged(machine)
    assert facts.memory.beancounters is None
    assert "run as root" in facts.memory.unknown["beancounters"]


# -- cgroups -----------------------------------------------------------------------------------------------

def test_cgroup_v2_limit_below_memtotal(machine):
    machine.write("sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
    machine.write("sys/fs/cgroup/memory.max", f"{2 * GiB}\n")
    machine.write("sys/fs/cgroup/memory.current", f"{int(1.9 * GiB)}\n")
    facts, verdict, found = judged(machine, container="docker")
    assert facts.memory.cgroup_limit_bytes == 2 * GiB
    assert facts.memory.cgroup_limit_source.endswith("sys/fs/cgroup/memory.max")
    assert verdict.guaranteed is False and verdict.total_bytes == 2 * GiB
    assert verdict.reasons == ["cgroup memory limit 2.0 GiB below MemTotal 8.0 GiB"]
    assert found["MEM-CGROUP-LIMIT"].severity is Severity.WARNING  # 95 % used
    assert "docker update --memory" in found["MEM-CGROUP-LIMIT"].hint and found["MEM-CGROUP-LIMIT"].fix == ""


def test_cgroup_v2_max_and_the_init_scope_leaf_are_no_limit(machine):
    machine.write("sys/fs/cgroup/cgroup.controllers", "memory\n")
    machine.write("sys/fs/cgroup/memory.max", "max\n")
    machine.write("proc/1/cgroup", "0::/init.scope\n")
    machine.write("sys/fs/cgroup/init.scope/memory.max", f"{100 * MiB}\n")  # binds systemd only
    facts, verdict, found = judged(machine)
    assert facts.memory.cgroup_limit_bytes is None and verdict.guaranteed is True
    assert "MEM-CGROUP-LIMIT" not in found


def test_cgroup_v1_unlimited_and_nested_container_limit(machine):
    machine.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert judged(machine)[0].memory.cgroup_limit_bytes is None
    machine.write("proc/1/cgroup", "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n")
    machine.write("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", f"{GiB}\n")
    machine.write("sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes", f"{100 * MiB}\n")
    facts, verdict, found = judged(machine, container="docker")
    assert facts.memory.cgroup_limit_bytes == GiB and facts.memory.cgroup_usage_bytes == 100 * MiB
    assert found["MEM-CGROUP-LIMIT"].severity is Severity.INFO
    assert verdict.total_bytes == GiB


def test_container_without_limit_is_unknown(machine):
    _, verdict, _ = judged(machine, container="lxc")
    assert verdict.guaranteed is None and "lxc container" in verdict.reasons[0]


# -- overcommit, swap, sizes -------------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "committed_kb", "limit_kb", "severity", "words"), [
    ("2", 3900 * 1024, 4096 * 1024, Severity.WARNING, "allocations will fail soon"),
    ("0", 9 * 1024 * 1024, 4096 * 1024, Severity.WARNING, "exceeds RAM + swap"),
    ("1", 1024 * 1024, 4096 * 1024, Severity.INFO, "always overcommits"),
    ("0", 1024 * 1024, 4096 * 1024, Severity.OK, "of RAM + swap 8.0 GiB"),
])
def test_overcommit(machine, mode, committed_kb, limit_kb, severity, words):
    machine.write("proc/sys/vm/overcommit_memory", mode + "\n")
    machine.write("proc/meminfo", meminfo(committed_kb=committed_kb, limit_kb=limit_kb))
    _, verdict, found = judged(machine)
    f = found["MEM-OVERCOMMIT"]
    assert (f.severity, f.evidence["overcommit_memory"]) == (severity, int(mode))
    assert words in f.summary
    assert verdict.guaranteed is True  # the guest's own policy, not the host's guarantee
    if mode == "0" and severity is Severity.WARNING:
        assert "vm.overcommit_memory=2" in f.hint and "overcommit_ratio" in f.hint and f.fix == ""


def test_swap_firmware_ram_and_the_verdict_line(machine):
    machine.write("proc/meminfo", meminfo(total_kb=230 * 1024, swap_kb=512 * 1024))
    for i, (kind, start, end) in enumerate([("System RAM", 0, 0x9FBFF), ("Reserved", 0x9FC00, 0xFFFFF),
                                            ("System RAM", 0x100000, 0xFFDFFFF)]):
        machine.write(f"sys/firmware/memmap/{i}/type", kind + "\n")
        machine.write(f"sys/firmware/memmap/{i}/start", hex(start) + "\n")
        machine.write(f"sys/firmware/memmap/{i}/end", hex(end) + "\n")
    facts, verdict, found = judged(machine)
    assert facts.memory.firmware_bytes == 0x9FC00 + 0xFFDFFFF - 0x100000 + 1
    assert facts.memory.swap_total_bytes == 512 * MiB
    assert verdict.installed_bytes == facts.memory.firmware_bytes
    summary = found["MEM-GUARANTEED"].summary
    assert summary == "memory guaranteed (230 MiB usable of 256 MiB installed, swap 512 MiB)"
    report = build_report(facts)
    assert "memory: 230 MiB of 256 MiB + 512 MiB swap, guaranteed" in render(report, verbose=True)


def test_empty_machine_degrades_to_unknown(tmp_path):
    m = FakeMachine(tmp_path)
    memory = collect_memory(m.roots)
    assert memory.total_bytes is None and memory.balloons == [] and "meminfo" in memory.unknown
    facts = m.collect()
    verdict = memory_verdict(facts)
    assert verdict.guaranteed is None and verdict.reasons == ["MemTotal could not be read"]
    assert memory_verdict(Facts()).reasons == ["memory facts were not collected"]
    assert {f.id for f in run(*with_recorded(Facts()))} == {"CPU-STEAL"}


def test_memory_facts_round_trip_and_judge_the_same(machine):
    add_virtio_device(machine, "virtio0", 5, "virtio_balloon")
    machine.write("sys/kernel/debug/virtio-balloon", "InflatedTotal: 1024 kB\nInflatedFree: 0 kB\n")
    machine.write("proc/user_beancounters", BEANCOUNTERS)
    facts = machine.collect()
    again = facts_from_dict(facts.to_dict())
    assert again.memory == facts.memory and again.cpu_steal == facts.cpu_steal
    assert [f.to_dict() for f in run(*with_recorded(again))] == [f.to_dict() for f in run(*with_recorded(facts))]


def test_helpers():
    assert parse_key_numbers("target: 5 pages\nInflatedTotal: 2 kB\nballoon_inflate 7\nstate : 1 (Init)\n") == {
        "target": 5, "InflatedTotal": 2048, "balloon_inflate": 7, "state": 1}
    assert [fmt_bytes(n) for n in (None, 0, 1536, 256 * MiB, 25276063744)] == ["?", "0 B", "1.5 KiB", "256 MiB",
                                                                               "23.5 GiB"]
