"""Hypervisor and container detection: evidence from each source, weighed into one verdict."""

from __future__ import annotations

import pytest

from guestcheck.collect.virt import collect_evidence
from guestcheck.facts import Evidence, Virt
from guestcheck.judge.virt import FIRECRACKER_CAVEAT, host_tools, judge_virt
from tests.fakemachine import FakeMachine


def _detect(m: FakeMachine, cpuid=None):
    return judge_virt(Virt(evidence=collect_evidence(m.roots, lambda: cpuid)))


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
    # QEMU/KVM with hv-* enlightenments answers leaf 0x40000000 as Hyper-V; only KVM offers them, so: kvm.
    ("kvm with hyper-v enlightenments", dict(sys_vendor="QEMU"), "Microsoft Hv", "kvm", None),
    ("kvm with hyper-v enlightenments under its own name", dict(sys_vendor="QEMU"), "Linux KVM Hv", "kvm", None),
    ("bhyve, signature with its trailing space", dict(sys_vendor="BHYVE"), "bhyve bhyve ", "bhyve", None),
    ("unknown cloud named by its DMI vendor", dict(sys_vendor="Exoscale", product_name="KVM"), "KVMKVMKVM",
     "kvm", "exoscale"),
    ("hetzner cloud", dict(sys_vendor="Hetzner", product_name="vServer"), "KVMKVMKVM", "kvm", "hetzner"),
    ("on-premises KVM vendor is no cloud", dict(sys_vendor="Red Hat", product_name="KVM"), "KVMKVMKVM", "kvm",
     None),
]


@pytest.mark.parametrize("label,dmi,cpuid,hv,cloud", DMI_CASES, ids=[c[0] for c in DMI_CASES])
def test_hypervisor_from_dmi_and_cpuid(tmp_path, label, dmi, cpuid, hv, cloud):
    m = FakeMachine(tmp_path)
    m.set_dmi(**dmi)
    virt = _detect(m, cpuid)
    assert (virt.hypervisor, virt.cloud, virt.container) == (hv, cloud, None)
    # the rows that decided it are used, and point to the verdict or say how they lead to it
    assert any(e.used and (e.points_to == hv or e.note.startswith(("KVM runs", "Hyper-V enlightenments of KVM")))
               for e in virt.evidence)


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


def _smbios_type0(vm_bit: bool) -> bytes:
    """An SMBIOS type 0 structure 24 bytes long, extension byte 2 (offset 19) with or without bit 4."""
    raw = bytearray(24)
    raw[0], raw[1] = 0, 24
    raw[19] = 0x14 if vm_bit else 0x04
    return bytes(raw)


def test_ec2_bare_metal_is_bare_metal_on_amazon(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_cpus(96, hypervisor_flag=False)
    m.set_dmi(sys_vendor="Amazon EC2", product_name="m5.metal", bios_vendor="Amazon EC2")
    virt = _detect(m)
    assert (virt.hypervisor, virt.cloud) == (None, "amazon")


def test_ec2_nitro_instance_is_kvm_on_amazon(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="Amazon EC2", product_name="m5.large", bios_vendor="Amazon EC2")
    virt = _detect(m, "KVMKVMKVM")
    assert (virt.hypervisor, virt.cloud) == ("kvm", "amazon")


@pytest.mark.parametrize("product,vm_bit,hv", [("m5.metal", None, None), ("m5.large", None, "kvm"),
                                               ("m5.large", False, None), ("m5.metal", True, "kvm")])
def test_ec2_without_cpuinfo_falls_back_to_smbios_then_product(product, vm_bit, hv):
    rows = [Evidence("dmi", "/sys/class/dmi/id/sys_vendor", "Amazon EC2"),
            Evidence("dmi", "/sys/class/dmi/id/product_name", product)]
    if vm_bit is not None:
        rows.append(Evidence("smbios", "/sys/firmware/dmi/entries/0-0/raw byte 19", "0x14" if vm_bit else "0x04"))
    virt = judge_virt(Virt(evidence=rows))
    assert (virt.hypervisor, virt.cloud) == (hv, "amazon")


def test_unknown_vendor_is_a_cloud_only_when_the_dmi_says_virtual_machine(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_dmi(sys_vendor="Exoscale", product_name="Compute")
    m.write("sys/firmware/dmi/entries/0-0/raw", "")
    (tmp_path / "sys/firmware/dmi/entries/0-0/raw").write_bytes(_smbios_type0(vm_bit=False))
    assert _detect(m, "KVMKVMKVM").cloud is None  # a VM, but the DMI does not say so: the vendor may be anyone
    (tmp_path / "sys/firmware/dmi/entries/0-0/raw").write_bytes(_smbios_type0(vm_bit=True))
    virt = _detect(m, "KVMKVMKVM")
    assert (virt.hypervisor, virt.cloud) == ("kvm", "exoscale")
    smbios = next(e for e in virt.evidence if e.source == "smbios")
    assert (smbios.value, smbios.points_to) == ("0x14", "vm")


def test_a_server_of_a_cloud_vendor_is_no_cloud_vm(tmp_path):
    m = FakeMachine(tmp_path)
    m.set_cpus(8, hypervisor_flag=False)
    m.set_dmi(sys_vendor="Exoscale", product_name="Server")
    (tmp_path / "sys/firmware/dmi/entries/0-0").mkdir(parents=True)
    (tmp_path / "sys/firmware/dmi/entries/0-0/raw").write_bytes(_smbios_type0(vm_bit=False))
    assert (_detect(m).hypervisor, _detect(m).cloud) == (None, None)


def test_cpuid_signatures_are_matched_byte_for_byte():
    from guestcheck.collect.fs import escape_bytes

    def hv(sig: str):
        return judge_virt(Virt(evidence=[Evidence("cpuinfo", "/proc/cpuinfo flags", "hypervisor"),
                                         Evidence("cpuid", "CPUID leaf 0x40000000", sig)])).hypervisor

    assert hv(escape_bytes(b"bhyve bhyve ")) == "bhyve"
    assert hv("bhyve bhyve") == "unknown"  # not what bhyve sends
    assert hv(escape_bytes(b"KVMKVMKVM\0\0\0".rstrip(b"\0"))) == "kvm"
    assert hv("KVMKVMKV") == "unknown"
    assert escape_bytes(b"A\x00B\\ ") == "A\\x00B\\x5c "


def _non_root_firecracker() -> list[Evidence]:
    """What a non-root process sees on Firecracker: no DMI at all, ACPI tables root-only, KVM's signature."""
    return [Evidence("acpi", "/sys/firmware/acpi/tables", "", error="permission denied"),
            Evidence("cpuinfo", "/proc/cpuinfo flags", "hypervisor"),
            Evidence("cpuid", "CPUID leaf 0x40000000", "KVMKVMKVM"),
            Evidence("clocksource", "available_clocksource", "tsc kvm-clock"),
            Evidence("namespace", "/proc/self/ns/pid", "pid:[4026531836]")]


def test_non_root_on_firecracker_says_kvm_and_what_root_would_tell():
    virt = judge_virt(Virt(evidence=_non_root_firecracker()))
    assert virt.hypervisor == "kvm"
    assert virt.caveats == [FIRECRACKER_CAVEAT]
    denied = next(e for e in virt.evidence if e.error)
    assert not denied.used and "could not be read" in denied.note
    assert host_tools(virt) == ("firecracker", "cloud-hypervisor", "qemu")


def test_a_denied_source_is_undecided_only_where_it_could_change_the_verdict():
    """Issue 19: the ACPI tables decide Firecracker only where no DMI does; PID 1's environment names a container
    only inside a namespace of its own."""
    virt = judge_virt(Virt(evidence=_non_root_firecracker()))
    assert virt.undecided == ["/sys/firmware/acpi/tables"]
    assert virt.evidence[0].note.endswith("could change the hypervisor verdict")
    with_dmi = judge_virt(Virt(evidence=[*_non_root_firecracker(), Evidence("dmi", "/sys/class/dmi/id/sys_vendor",
                                                                            "QEMU")]))
    assert with_dmi.undecided == [] and with_dmi.evidence[0].note.endswith("the other evidence decides without it")
    environ = Evidence("marker", "/proc/1/environ", "", error="permission denied")
    root = [Evidence("acpi", "/sys/firmware/acpi/tables/DSDT OEM ID", "FIRECK"), *_non_root_firecracker()[1:]]
    assert judge_virt(Virt(evidence=[*root, environ])).undecided == []
    own_ns = [*root[:-1], Evidence("namespace", "/proc/self/ns/pid", "pid:[4026532300]"), environ]
    virt = judge_virt(Virt(evidence=own_ns))
    assert (virt.container, virt.undecided) == ("unknown", ["/proc/1/environ"])
    strong = Evidence("marker", "/run/systemd/container", "lxc")
    assert judge_virt(Virt(evidence=[*own_ns, strong])).undecided == []


def test_as_root_the_same_machine_is_firecracker():
    rows = _non_root_firecracker()
    rows[0] = Evidence("acpi", "/sys/firmware/acpi/tables/DSDT OEM ID", "FIRECK")
    virt = judge_virt(Virt(evidence=rows))
    assert (virt.hypervisor, virt.caveats) == ("firecracker", [])
    assert host_tools(virt) == ("firecracker",)


def test_dmi_makes_the_acpi_denial_irrelevant():
    rows = [*_non_root_firecracker(), Evidence("dmi", "/sys/class/dmi/id/sys_vendor", "QEMU")]
    virt = judge_virt(Virt(evidence=rows))
    assert (virt.hypervisor, virt.caveats) == ("kvm", [])
    assert host_tools(virt) == ("libvirt", "qemu", "proxmox")


def test_host_tools_follow_the_platform():
    assert host_tools(Virt(hypervisor="kvm", cloud="amazon")) == ("provider",)
    assert host_tools(Virt(hypervisor="vmware")) == ("vmware",)
    assert host_tools(Virt(hypervisor=None)) == ()


def test_judging_ignores_the_verdicts_already_in_the_rows():
    stale = Evidence("dmi", "/sys/class/dmi/id/sys_vendor", "QEMU", points_to="vmware", used=False,
                     note="outweighed: verdict is vmware")
    virt = judge_virt(Virt(hypervisor="vmware", cloud="x", evidence=[stale]))
    assert (virt.hypervisor, virt.cloud) == ("qemu", None)
    assert (virt.evidence[0].points_to, virt.evidence[0].used, virt.evidence[0].note) == ("qemu", True, "")
