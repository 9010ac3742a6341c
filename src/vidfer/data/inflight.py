"""Which item each data-loader worker is loading, readable by the training process.

When a loader worker dies (killed, out of memory, a crash in a native library) or hangs, PyTorch's
``DataLoader`` raises an error naming only the worker's pid. With a :class:`LoaderBoard` the
training process can name the video instead: a worker writes ``(pid, item)`` into shared memory
before loading an item and clears it after, so the slot of a dead worker still holds its item.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator

from torch.utils.data import get_worker_info


class LoaderBoard:
    """One ``(pid, item)`` slot per loader worker, in shared memory.

    Create it in the training process before the loader starts its workers (they inherit it
    with the dataset).

    Args:
        workers: Loader worker processes.
    """

    def __init__(self, workers: int) -> None:
        # Flat (pid, item + 1) pairs; 0 marks an empty slot. No lock: each worker writes only
        # its own slot and the reader only needs the values of workers that stopped.
        self._slots = multiprocessing.RawArray("q", 2 * workers)

    def reset(self) -> None:
        """Empty every slot (before an epoch's loader starts new workers)."""
        for i in range(len(self._slots)):
            self._slots[i] = 0

    @contextlib.contextmanager
    def loading(self, item: int) -> Iterator[None]:
        """Mark ``item`` as loading in this worker's slot for the duration of the block.

        A no-op in the training process itself (no loader workers).
        """
        info = get_worker_info()
        if info is None:
            yield
            return
        slot = 2 * info.id
        self._slots[slot], self._slots[slot + 1] = os.getpid(), item + 1
        yield
        self._slots[slot + 1] = 0

    def in_flight(self) -> list[tuple[int, bool]]:
        """``(item, worker alive)`` for every item a worker started and did not finish."""
        out = []
        for slot in range(0, len(self._slots), 2):
            pid, item = self._slots[slot], self._slots[slot + 1]
            if item:
                out.append((item - 1, _alive(pid)))
        return out


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped, does not)."""
    if not os.path.isdir("/proc/self"):
        # No /proc (macOS): a zombie still answers signal 0, so a dead worker may look alive.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            # "pid (name) state ...": the state follows the last parenthesis.
            return handle.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
