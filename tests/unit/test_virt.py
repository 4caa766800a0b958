"""Hypervisor and container detection: evidence from each source, weighed into one verdict."""

from __future__ import annotations

import pytest

from guestcheck.collect.virt import collect_evidence, decide
from tests.fakemachine import FakeMachine


def _detect(m: FakeMachine, cpuid=None):
    return decide(collect_evidence(m.roots, lambda: cpuid))


DMI_CASES = [
    ("qemu tcg", dict(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)"), None, "qemu", None),
    ("qemu+kvm", dict(sys_vendor="QEMU", product_name="Standard PC (Q35 + ICH9, 2009)"), "KVMKVMKVM", "kvm", None),
    ("aws nitro", dict(sys_vendor="Amazon EC2", product_name="m5.large", bios_vendor="Amazon EC2"), "KVMKVMKVM",
     "kvm", "amazon"),
    ("gce", dict(sys_vendor="Google", product_name="Google Compute Engine"), "KVMKVMKVM", "kvm", "google"),
    ("azure", dict(sys_vendor="Microsoft Corporation", product_name="Virtual Machine",
                   chassis_asset_tag="7783-7084-3265-9085-8269-3286-77"), "Microsoft Hv", "hyperv", "microsoft"),
    ("hyper-v on prem", dict(sys_vendor="Microsoft Corporation", product_name="Virtual Machine"), "Microsoft Hv",
     "hyperv", None),
    ("vmware", dict(sys_vendor="VMware, Inc.", product_name="VMware Virtual Platform"), "VMwareVMware", "vmware",
     None),
    ("virtualbox", dict(sys_vendor="innotek GmbH", product_name="VirtualBox"), "VBoxVBoxVBox", "virtualbox", None),
    ("xen hvm", dict(sys_vendor="Xen", product_name="HVM domU"), "XenVMMXenVMM", "xen", None),
    ("oracle cloud", dict(sys_vendor="QEMU", chassis_asset_tag="OracleCloud.com"), "KVMKVMKVM", "kvm", "oracle"),
    ("kvm with hyper-v enlightenments", dict(sys_vendor="QEMU"), "Microsoft Hv", "qemu", None),
]


@pytest.mark.parametrize("label,dmi,cpuid,hv,cloud", DMI_CASES, ids=[c[0] for c in DMI_CASES])
def test_hypervisor_from_dmi_and_cpuid(tmp_path, label, dmi, cpuid, hv, cloud):
    m = FakeMachine(tmp_path)
    m.set_dmi(**dmi)
    virt = _detect(m, cpuid)
    assert (virt.hypervisor, virt.cloud, virt.container) == (hv, cloud, None)
    assert any(e.used and e.points_to == hv for e in virt.evidence)


def test_firecracker_from_acpi_oem_id(tmp_path):
    m = FakeMachine(tmp_path)
    for table in ("DSDT", "APIC"):
        (tmp_path / "sys/firmware/acpi/tables").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"sys/firmware/acpi/tables/{table}").write_bytes(
            table.encode() + b"\x53\x0f\x00\x00\x02\x77FIRECKFCVMDSDT" + bytes(16))
    m.write("sys/devices/system/clocksource/clocksource0/available_clocksource", "tsc kvm-clock\n")
    virt = _detect(m, "KVMKVMKVM")
    assert virt.hypervisor == "firecracker"
    assert all(e.used for e in virt.evidence if e.points_to == "kvm")  # KVM runs it: consistent, not outweighed


def test_xen_pv_from_sys_hypervisor(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_cpus(1, hypervisor_flag=False)
    m.write("sys/hypervisor/type", "xen\n")
    assert _detect(m).hypervisor == "xen"


def test_xen_dom0_is_the_host(tmp_path):
    m = FakeMachine(tmp_path)
    m.write("sys/hypervisor/type", "xen\n")
    m.write("proc/xen/capabilities", "control_d\n")
    assert _detect(m).hypervisor is None


def test_kvm_clock_alone(tmp_path):
    m = FakeMachine(tmp_path)
    m.write("sys/devices/system/clocksource/clocksource0/available_clocksource", "kvm-clock tsc\n")
    assert _detect(m).hypervisor == "kvm"


def test_hypervisor_bit_alone_is_an_unknown_vm(tmp_path):
    assert _detect(FakeMachine(tmp_path)).hypervisor == "unknown"


def test_bare_metal(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_cpus(4, hypervisor_flag=False)
    m.set_dmi(sys_vendor="Dell Inc.", product_name="PowerEdge R640")
    virt = _detect(m)
    assert (virt.hypervisor, virt.container) == (None, None)


CONTAINERS = [
    ("openvz", lambda m: (m.write("proc/vz/veinfo", ""), m.write("proc/user_beancounters", "")), "openvz"),
    ("lxc by pid1 environ", lambda m: m.write("proc/1/environ", "PATH=/bin\0container=lxc\0"), "lxc"),
    ("nspawn marker", lambda m: m.write("run/systemd/container", "systemd-nspawn\n"), "systemd-nspawn"),
    ("podman", lambda m: m.write("run/.containerenv", ""), "podman"),
    ("wsl", lambda m: m.write("proc/sys/kernel/osrelease", "5.15.90.1-microsoft-standard-WSL2\n"), "wsl"),
    ("docker by cgroup and pid namespace",
     lambda m: (m.write("proc/1/cgroup", "0::/docker/3f1e2a9c0b7d\n"), m.write(".dockerenv", ""),
                m.symlink("proc/self/ns/pid", "pid:[4026532511]")), "docker"),
    ("kubernetes pod", lambda m: (m.write("proc/1/cgroup", "0::/kubepods/besteffort/pod1234/abc\n"),
                                  m.symlink("proc/self/ns/pid", "pid:[4026532600]")), "kubernetes"),
    ("unnamed pid namespace", lambda m: m.symlink("proc/self/ns/pid", "pid:[4026532700]"), "unknown"),
]


@pytest.mark.parametrize("label,setup,container", CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_containers(tmp_path, label, setup, container):
    m = FakeMachine(tmp_path)
    setup(m)
    assert _detect(m).container == container


def test_leftover_dockerenv_on_a_machine_with_its_own_kernel_is_not_a_container(tmp_path):
    m = FakeMachine(tmp_path)  # initial PID and user namespaces, as on this very machine
    m.write(".dockerenv", "")
    virt = _detect(m, "KVMKVMKVM")
    assert virt.container is None
    marker = next(e for e in virt.evidence if e.detail.endswith(".dockerenv"))
    assert not marker.used and "initial" in marker.note
