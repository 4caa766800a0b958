"""Commands that differ between distributions: installing a package, enabling a service.

Pure: decided from os-release's ID and ID_LIKE (facts.host.os_id, os_like), so a saved facts file gets the
commands of the machine it came from. An unknown distribution gets the Debian form, which is what most
cloud images are, with the family named.
"""

from __future__ import annotations

from typing import Sequence

# family -> (install command prefix, how a service is enabled and started now)
_FAMILIES = {
    "debian": ("apt-get install -y", "systemctl enable --now {service}"),
    "fedora": ("dnf install -y", "systemctl enable --now {service}"),
    "suse": ("zypper install -y", "systemctl enable --now {service}"),
    "alpine": ("apk add", "rc-update add {service} && rc-service {service} start"),
    "arch": ("pacman -S --noconfirm", "systemctl enable --now {service}"),
}
# os-release IDs (and ID_LIKE words) -> family
_MEMBERS = {
    "debian": "debian", "ubuntu": "debian", "linuxmint": "debian", "raspbian": "debian", "pop": "debian",
    "fedora": "fedora", "rhel": "fedora", "centos": "fedora", "rocky": "fedora", "almalinux": "fedora",
    "ol": "fedora", "amzn": "fedora", "azurelinux": "fedora", "mariner": "fedora",
    "suse": "suse", "opensuse": "suse", "opensuse-leap": "suse", "opensuse-tumbleweed": "suse", "sles": "suse",
    "sle-micro": "suse",
    "alpine": "alpine",
    "arch": "arch", "archlinux": "arch", "manjaro": "arch",
}


def family(os_id: str, os_like: Sequence[str] = ()) -> str:
    """debian, fedora, suse, alpine or arch; debian when nothing matches."""
    for name in (os_id, *os_like):
        if name in _MEMBERS:
            return _MEMBERS[name]
    return "debian"


def install_command(package: str, os_id: str = "", os_like: Sequence[str] = ()) -> str:
    return f"{_FAMILIES[family(os_id, os_like)][0]} {package}"


def enable_service_command(service: str, os_id: str = "", os_like: Sequence[str] = ()) -> str:
    return _FAMILIES[family(os_id, os_like)][1].format(service=service)
