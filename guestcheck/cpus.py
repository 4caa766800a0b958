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


def _range(part: str) -> Optional[range]:
    """"3" or "0-3" (ASCII digits, low to high) as a range; None when `part` is not one."""
    lo, dash, hi = part.partition("-")
    first = maybe_int(lo, max_digits=6)
    last = maybe_int(hi, max_digits=6) if dash else first
    if first is None or last is None or first > last:
        return None
    return range(first, min(last + 1, MAX_CPUS))


def cpu_list(text: Optional[str]) -> Set[int]:
    """"0-3,8" -> {0, 1, 2, 3, 8}; an unreadable list is the empty set, a CPU beyond MAX_CPUS is left out."""
    out: Set[int] = set()
    for part in (text or "").split(","):
        r = _range(part.strip())
        if r is not None:
            out.update(r)
    return out


def parse_cpu_list(text: str) -> Set[int]:
    """A CPU list typed by a person ("0-3,5"): every part must be a CPU or a low-high range of ASCII digits
    below MAX_CPUS. ValueError (its message one line, naming the part) otherwise; never an empty set."""
    if not text.strip():
        raise ValueError("an empty CPU list")
    out: Set[int] = set()
    for part in text.split(","):
        r = _range(part.strip())
        if r is None or not r or r[-1] >= MAX_CPUS - 1:
            raise ValueError(f"{part.strip()!r} is not a CPU number or a range like 0-3")
        out.update(r)
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
