"""Shell lines for fixes that run inside the guest: pasteable as they are, one command per line.

Every name that comes from the machine (interface names, MACs) is shell-quoted; a file a fix makes
persistent is written with a heredoc whose delimiter is quoted, so the shell expands nothing in it.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

from guestcheck.text import shell_word

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_UDEV_SAFE = re.compile(r"^[A-Za-z0-9_.:@+-]+$")  # an interface name udev can match without escaping


def sysfs_write(value: str, path: str) -> str:
    """`echo VALUE > PATH`, both quoted."""
    return f"echo {shell_word(value)} > {shell_word(path)}"


def net_queue_attr(ifname: str, queue: str, attr: str) -> str:
    return f"/sys/class/net/{ifname}/queues/{queue}/{attr}"


def write_file(path: str, lines: Iterable[str]) -> str:
    """A heredoc that writes PATH: one pasteable command over several lines."""
    body = "\n".join(lines)
    return f"cat > {shell_word(path)} <<'EOF'\n{body}\nEOF"


def udev_match(ifname: str, mac: Optional[str]) -> Optional[str]:
    """The udev match for this interface at boot: its MAC (the kernel name may be renamed later in the same
    event), else its name when udev can take it as it is; None when neither is safe."""
    if mac and _MAC.match(mac.lower()) and mac.lower() not in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
        return f'ATTR{{address}}=="{mac.lower()}"'
    if _UDEV_SAFE.match(ifname):
        return f'KERNEL=="{ifname}"'
    return None


def rps_lines(ifname: str, mac: Optional[str], mask: str) -> list[str]:
    """Receive Packet Steering over `mask` on a single-queue NIC now, and a udev rule that sets it at boot."""
    lines = [sysfs_write(mask, net_queue_attr(ifname, "rx-0", "rps_cpus"))]
    match = udev_match(ifname, mac)
    if match is not None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ifname)
        lines.append(write_file(f"/etc/udev/rules.d/90-guestcheck-rps-{safe}.rules", [
            f'ACTION=="add", SUBSYSTEM=="net", {match}, ATTR{{queues/rx-0/rps_cpus}}="{mask}"']))
    return lines


def sysctl_lines(settings: dict[str, int], file_stem: str) -> list[str]:
    """`sysctl -w` now, and a file in /etc/sysctl.d/ that keeps it across reboots."""
    now = "sysctl -w " + " ".join(f"{k}={v}" for k, v in settings.items())
    return [now, write_file(f"/etc/sysctl.d/60-guestcheck-{file_stem}.conf",
                            [f"{k} = {v}" for k, v in settings.items()])]
