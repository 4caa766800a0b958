"""The kernel's two ways of writing a set of CPUs: lists ("0-3,8") and hex bitmaps ("ff,ffffffff").

Pure parsing and formatting, shared by the collectors (online CPUs) and the checks (IRQ affinity, the
RPS/XPS masks their fixes print). Bitmaps are 32-bit hex groups separated by commas: the kernel's
bitmap_parse rejects a longer run of digits, so a mask for more than 32 CPUs must be grouped.
"""

from __future__ import annotations

from typing import Iterable, Optional, Set

from guestcheck.quantities import maybe_int

MAX_CPUS = 65536  # above any kernel's NR_CPUS: a list naming more came from a damaged (or hostile) facts file
_MASK_DIGITS = MAX_CPUS // 4  # hex digits of a bitmap of MAX_CPUS CPUs


def cpu_list(text: Optional[str]) -> Set[int]:
    """"0-3,8" -> {0, 1, 2, 3, 8}; an unreadable list is the empty set, a CPU beyond MAX_CPUS is left out."""
    out: Set[int] = set()
    for part in (text or "").split(","):
        lo, _, hi = part.strip().partition("-")
        first, last = maybe_int(lo, max_digits=6), maybe_int(hi or lo, max_digits=6)
        if first is not None and last is not None:
            out.update(range(first, min(last + 1, MAX_CPUS)))
    return out


def cpu_bitmap(cpus: Iterable[int]) -> str:
    """{0, 1, 2, 3} -> "f"; {39} -> "80,00000000" (32-bit groups, as the kernel writes and reads them)."""
    value = sum(1 << cpu for cpu in set(cpus))
    digits = f"{value:x}"
    groups = []
    while digits:
        groups.insert(0, digits[-8:])
        digits = digits[:-8]
    return ",".join(groups) or "0"


def first_cpus_mask(count: int) -> str:
    """The bitmap of CPUs 0..count-1."""
    return cpu_bitmap(range(count))


def mask_is_zero(mask: str) -> bool:
    return maybe_int(mask.replace(",", ""), base=16, max_digits=_MASK_DIGITS) == 0


def mask_cpus(mask: Optional[str]) -> Set[int]:
    """"f" -> {0, 1, 2, 3}; "1,00000000" -> {32}; an unreadable mask is the empty set."""
    value = maybe_int((mask or "").replace(",", ""), base=16, max_digits=_MASK_DIGITS)
    if value is None:
        return set()
    return {bit for bit in range(value.bit_length()) if value >> bit & 1}
