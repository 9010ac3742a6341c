"""Atomic writes: a reader sees the old file or the complete new one, never a partial one.

Every write goes to a temporary file in the destination folder, is flushed and fsynced, then
renamed over the destination; the folder is fsynced so that the rename survives a power cut.
On any error the temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the block exits without error.

    Args:
        path: Destination file; its folder is created if missing.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: object) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> None:
    """Atomically write ``path`` by calling ``writer`` on a binary file handle.

    Use it for serialisers that take a file object (``numpy.save``, ``torch.save``, ``savefig``).
    """
    with atomic_open(path, "wb") as handle:
        writer(handle)
