"""Sysctl names as files write them: the one normaliser, shared by the profiles (tune) and the evidence read
from other agents' files (collect: TuneD's [sysctl])."""

from __future__ import annotations


def normalise_key(key: str) -> str:
    """sysctl.d allows "net/ipv4/tcp_rmem" as well as "net.ipv4.tcp_rmem"; compare in the dotted form."""
    key = key.strip()
    if "/" in key and ("." not in key or key.index("/") < key.index(".")):
        key = key.replace(".", "\0").replace("/", ".").replace("\0", "/")
    return key
