"""The SET side of the ethtool ioctls: turn features on or off, change channel counts.

Uses the same socket and ioctl helper as the GET side (guestcheck.collect.ethtool); needs CAP_NET_ADMIN.
Only the tuner's units (guestcheck/tune/units/) call these.
"""

from __future__ import annotations

import array
import struct
from dataclasses import astuple
from typing import Dict

from guestcheck.collect.ethtool import Ethtool, EthtoolError
from guestcheck.facts import Channels, Rings

ETHTOOL_SFEATURES = 0x0000003B
ETHTOOL_SCHANNELS = 0x0000003D
ETHTOOL_SRINGPARAM = 0x00000011


class EthtoolWriter(Ethtool):
    def requested_features(self, ifname: str) -> Dict[str, bool]:
        """What was asked for, by changeable feature: the kernel may hold a requested feature off while
        one it depends on is off (`ethtool -k` shows "off [requested on]"). Rollback restores these."""
        return {name: bool(f.requested) for name, f in self.features(ifname).items()
                if f.available and not f.never_changed}

    def set_features(self, ifname: str, wanted: Dict[str, bool]) -> None:
        """Request each named feature on or off in one call; the kernel may still refuse some
        (dependencies such as TSO needing scatter-gather), so callers read the features back."""
        names = self._feature_strings(ifname)
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise EthtoolError("unsupported", f"{ifname} has no feature {unknown[0]}")
        blocks = (len(names) + 31) // 32
        valid, requested = [0] * blocks, [0] * blocks
        for i, name in enumerate(names):
            if name in wanted:
                valid[i // 32] |= 1 << (i % 32)
                if wanted[name]:
                    requested[i // 32] |= 1 << (i % 32)
        raw = struct.pack("II", ETHTOOL_SFEATURES, blocks)
        raw += b"".join(struct.pack("II", v, r) for v, r in zip(valid, requested))
        self._ioctl(ifname, array.array("B", raw))

    def set_channels(self, ifname: str, channels: Channels) -> None:
        """Counts must not exceed the maxima the device reports (the max_* fields are ignored)."""
        self._ioctl(ifname, array.array("B", struct.pack("I8I", ETHTOOL_SCHANNELS, *astuple(channels))))

    def set_rings(self, ifname: str, rings: Rings) -> None:
        """struct ethtool_ringparam: the sizes must not exceed the maxima the device reports (max_* ignored)."""
        self._ioctl(ifname, array.array("B", struct.pack("I8I", ETHTOOL_SRINGPARAM, *astuple(rings))))
