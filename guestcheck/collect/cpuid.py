"""The CPUID hypervisor vendor leaf (0x40000000), read by executing the instruction itself.

Userspace can run CPUID on x86 without privilege; the kernel exposes the vendor string nowhere
else. A 27-byte function is placed in an executable anonymous mapping and called through ctypes.
Anything unusual (not x86-64, no exec mappings allowed) returns None: the source says nothing.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
from typing import Optional

from guestcheck.collect.fs import escape_bytes

# void cpuid(uint32_t leaf, uint32_t out[4])  -- System V ABI: edi = leaf, rsi = out
_CODE = bytes(
    [
        0x53,  # push rbx (callee-saved, CPUID clobbers it)
        0x89, 0xF8,  # mov eax, edi
        0x31, 0xC9,  # xor ecx, ecx
        0x0F, 0xA2,  # cpuid
        0x89, 0x06,  # mov [rsi], eax
        0x89, 0x5E, 0x04,  # mov [rsi+4], ebx
        0x89, 0x4E, 0x08,  # mov [rsi+8], ecx
        0x89, 0x56, 0x0C,  # mov [rsi+12], edx
        0x5B,  # pop rbx
        0xC3,  # ret
    ]
)

HYPERVISOR_LEAF = 0x40000000


def _cpuid(leaf: int) -> Optional[tuple[int, int, int, int]]:
    if os.uname().machine != "x86_64":
        return None
    try:
        mem = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError, AttributeError):
        return None  # W^X policy (SELinux execmem, PaX): no CPUID from here
    mem.write(_CODE)
    anchor = ctypes.c_char.from_buffer(mem)
    func = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(ctypes.addressof(anchor))
    out = (ctypes.c_uint32 * 4)()
    func(leaf, out)
    del func, anchor  # release the buffer export so the mapping can be unmapped
    mem.close()
    return (out[0], out[1], out[2], out[3])


def hypervisor_vendor() -> Optional[str]:
    """The 12-byte signature such as "KVMKVMKVM", "Microsoft Hv", "bhyve bhyve ", or None.

    Trailing NUL bytes are dropped; any byte outside printable ASCII (or a backslash) is written \\xNN.
    """
    leaf1 = _cpuid(1)
    if leaf1 is None or not (leaf1[2] >> 31) & 1:
        return None  # no hypervisor bit: leaf 0x40000000 would return unrelated data
    regs = _cpuid(HYPERVISOR_LEAF)
    if regs is None:
        return None
    _eax, ebx, ecx, edx = regs
    raw = struct.pack("<III", ebx, ecx, edx).rstrip(b"\0")
    # Byte for byte: trailing NULs pad the 12-byte field, anything else (bhyve's trailing space) is kept.
    return escape_bytes(raw) or None
