"""TCP's congestion control, from /proc/sys/net/ipv4: the one new connections use and the ones on offer.

`tcp_congestion_control` is per network namespace; `tcp_available_congestion_control` lists the built-in controls
and those whose module is loaded (bbr appears there once tcp_bbr is); `tcp_allowed_congestion_control` those a
namespace other than the host's may set (anything else is "Operation not permitted" there). Unreadable files
leave the values unknown.
"""

from __future__ import annotations

import os

from guestcheck.collect.area import Run
from guestcheck.collect.fs import cat
from guestcheck.facts import Congestion
from guestcheck.roots import Roots

AREA = "congestion"


def collect_congestion(roots: Roots) -> Congestion:
    base = os.path.join(roots.proc, "sys/net/ipv4")
    control = cat(os.path.join(base, "tcp_congestion_control"))
    available = cat(os.path.join(base, "tcp_available_congestion_control"))
    allowed = cat(os.path.join(base, "tcp_allowed_congestion_control"))
    return Congestion(control=control or None, available=(available or "").split(), allowed=(allowed or "").split())


def collect(run: Run) -> Congestion:
    return collect_congestion(run.roots)
