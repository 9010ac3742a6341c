"""Atomic writes: a reader sees the old file or the complete new one, never a partial one.

Every write goes to a temporary file in the destination folder, is flushed and fsynced, then
renamed over the destination; the folder is fsynced so that the rename survives a power cut.
On any error the temporary file is removed and the destination is untouched; a full disk is
reported as a :class:`vidfer.errors.StorageError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from vidfer.errors import StorageError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_FULL_BYTES = 1 << 20  # a file system with less free space than this is taken as full


def _creation_mode() -> int:
    """The mode a new file gets from ``open()`` under the process's umask (``mkstemp`` gives 0600).

    Read once, at import: setting the umask to read it is not thread-safe.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _creation_mode()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces it when the block exits cleanly.

    The temporary name ends with the destination's extension, for writers that pick a format
    from it (FFmpeg). The file has the mode ``open()`` would give it (0666 less the umask at
    import), not ``mkstemp``'s private 0600. On success the file is fsynced, renamed over
    ``path`` and the folder is fsynced; on any error the temporary file is removed and ``path``
    is untouched.

    Raises:
        StorageError: when the disk (or the user's quota) is full.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=f".tmp{dest.suffix}", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp's file is private; the destination gets an ordinary file's mode, so that
        # runs and stores on a shared machine are readable as the umask allows.
        tmp.chmod(_FILE_MODE)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, dest)
        # The rename lives in the folder's entry table: fsync it so it survives a power cut.
        _fsync(dest.parent)
    except BaseException as error:
        reason = _no_space(error, dest.parent)  # before the deletion frees space
        tmp.unlink(missing_ok=True)
        if reason is not None:
            raise StorageError(
                f"{dest}: cannot write it, {reason}; the previous {dest.name} (if any) is "
                "intact and no temporary file is left; free some space and run again"
            ) from None
        raise


def remove_temporaries(folder: str | os.PathLike[str], name: str = "*") -> int:
    """Delete the temporary files that writes into ``folder`` left when their process was killed.

    Call it only when no other process can be writing there (a killed writer's temporary file
    is never read, but it takes space).

    Args:
        folder: The destination folder.
        name: Only temporaries of this destination file name (a glob; default: all).

    Returns:
        How many files were deleted.
    """
    stale = list(Path(folder).glob(f".{name}.*.tmp*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _no_space(error: BaseException, folder: Path) -> str | None:
    """Why a write into ``folder`` failed, if the disk is full; None for any other failure.

    Serialisers hide the ``OSError`` of the write: ``torch.save`` wraps it in its own error
    (found in the exception's chain), numpy's ``tofile`` reports a short write without an error
    number (then the folder's free space tells).
    """
    chain: BaseException | None = error
    while chain is not None:
        if isinstance(chain, OSError) and chain.errno in _NO_SPACE:
            return os.strerror(chain.errno).lower()
        chain = chain.__cause__ or chain.__context__
    if isinstance(error, OSError) and error.errno is None:
        stats = os.statvfs(folder)
        if stats.f_bavail * stats.f_frsize < _FULL_BYTES:
            return "no space left on device"
    return None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the block exits without error.

    Args:
        path: Destination file; its folder is created if missing.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8; file names that are not UTF-8, which Python
            reads as lone surrogates, are written back as their original bytes).
    """
    text = "b" not in mode
    encoding, errors = ("utf-8", "surrogateescape") if text else (None, None)
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding, errors=errors) as handle:
        yield handle


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
