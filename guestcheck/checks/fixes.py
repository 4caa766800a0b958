"""Shell lines for fixes that run inside the guest: pasteable as they are, one command per line.

Every name that comes from the machine (interface names, MACs) is shell-quoted; a file a fix makes
persistent is written with a heredoc whose delimiter is quoted, so the shell expands nothing in it.
"""

from __future__ import annotations

from typing import Iterable

from guestcheck.text import shell_word


def sysfs_write(value: str, path: str) -> str:
    """`echo VALUE > PATH`, both quoted."""
    return f"echo {shell_word(value)} > {shell_word(path)}"


def net_queue_attr(ifname: str, queue: str, attr: str) -> str:
    return f"/sys/class/net/{ifname}/queues/{queue}/{attr}"


def write_file(path: str, lines: Iterable[str]) -> str:
    """A heredoc that writes PATH: one pasteable command over several lines."""
    body = "\n".join(lines)
    return f"cat > {shell_word(path)} <<'EOF'\n{body}\nEOF"


def rps_fix(ifname: str) -> str:
    """Receive Packet Steering over every online CPU, as one command: `guestcheck tune rps` journals it, keeps it
    in a udev rule (where the name fits in a file name; else live only) and `tune rollback` undoes it."""
    from guestcheck.names import FILE_SAFE_IFNAME  # the names tune can persist (its files are named after them)

    return f"guestcheck tune rps {shell_word(ifname)}" + ("" if FILE_SAFE_IFNAME.fullmatch(ifname) else " --no-persist")


def rps_hint(ifname: str, mask: str) -> str:
    """The same without guestcheck's tuner: the plain sysfs write, which lasts until the next boot."""
    return (f"without guestcheck's tuner: {sysfs_write(mask, net_queue_attr(ifname, 'rx-0', 'rps_cpus'))} "
            "(MASK = the CPUs, hex; it lasts until the next boot, which `guestcheck tune rps` keeps it over, "
            "in a udev rule that `guestcheck tune rollback` removes)")


def sysctl_lines(settings: dict[str, int], file_stem: str) -> list[str]:
    """`sysctl -w` now, and a file in /etc/sysctl.d/ that keeps it across reboots."""
    now = "sysctl -w " + " ".join(f"{k}={v}" for k, v in settings.items())
    return [now, write_file(f"/etc/sysctl.d/60-guestcheck-{file_stem}.conf",
                            [f"{k} = {v}" for k, v in settings.items()])]
