"""A sandbox task and setup that maps address space as a CUDA context does (a module without
heavy imports, so that its workers start fast)."""

from __future__ import annotations

import mmap

_RESERVED: list[mmap.mmap] = []  # in a sandbox worker: what reserve() mapped


def reserve(megabytes: int) -> int:
    """Map ``megabytes`` of address space and keep it mapped, untouched (no memory is used);
    returns the megabytes this process holds so."""
    _RESERVED.append(mmap.mmap(-1, megabytes << 20))
    return sum(len(held) for held in _RESERVED) >> 20


def mapped_after_a_big_free() -> int:
    """Blocks glibc's malloc maps on their own for a 5 MiB buffer, after an 8 MiB one was freed
    (the change in ``mallinfo2().hblks``): 0 under glibc's default, which raised its threshold to
    8 MiB at that free; 1 under a fixed 4 MiB threshold."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
            )
        ]  # fmt: skip

    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    big = bytearray(8 << 20)
    del big
    before = mallinfo2().hblks
    held = bytearray(5 << 20)
    mapped = mallinfo2().hblks - before
    del held
    return int(mapped)
