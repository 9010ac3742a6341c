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
