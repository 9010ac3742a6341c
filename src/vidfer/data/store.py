"""The prepared store: every video decoded once into a memory-mappable uint8 array.

Layout::

    <store root>/<preprocessing key>/prepare.json      the preprocessing settings
    <store root>/<preprocessing key>/<video key>.npy   frames, uint8 (T, H, W, C)
    <store root>/<preprocessing key>/<video key>.json  the record (status, fps, kept frames, ...)

The video key is derived from the source file's identity (resolved path, size, modification
time; for a frame folder, the images' total size, their latest modification time and the
folder's frame rate), the preprocessing key from the preprocessing settings, so editing a video
or a setting re-prepares exactly what changed. The JSON record is written last, after the array,
both atomically: a record that exists describes a complete entry, and a run killed half-way
leaves at most orphan temporary files, never read, that the next run deletes. One process
prepares into a folder at a time (:meth:`PreparedStore.lock`); any number may read it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidfer.io.atomic import atomic_path, atomic_write_json, atomic_write_with, remove_temporaries
from vidfer.io.frame_folder import FRAME_FOLDER_FPS, list_images

log = logging.getLogger(__name__)

RECORD_VERSION = 1

# The largest frame count a header is reserved for (more digits than any video has frames).
_MAX_FRAMES_DIGITS = 10**18


@dataclass(frozen=True)
class SourceIdentity:
    """What identifies a source file's content cheaply: its resolved path, size and mtime, and
    the segment (start, end seconds) when only part of the file is used, so that several
    segments of one file (e.g. KTH's sub-sequences) are distinct entries.

    A frame folder (:mod:`vidfer.io.frame_folder`) is identified by its images: ``size`` is
    their total size, ``mtime_ns`` the latest modification time of the folder (it changes when
    an image is added, removed or renamed) and of its images, and ``folder_fps`` its nominal
    frame rate (None for a file), so that another rate prepares it again."""

    path: str
    size: int
    mtime_ns: int
    start: float | None = None
    end: float | None = None
    folder_fps: float | None = None

    @classmethod
    def of(
        cls,
        path: Path,
        segment: tuple[float | None, float | None] = (None, None),
        folder_fps: float = FRAME_FOLDER_FPS,
    ) -> SourceIdentity:
        """Identity of an existing file or frame folder (``OSError`` if it cannot be stat'ed).

        Args:
            path: The video file or frame folder.
            segment: The (start, end) seconds used, or (None, None) for all of it.
            folder_fps: The nominal frame rate, when ``path`` is a frame folder.
        """
        stat = path.stat()
        size, mtime_ns, rate = stat.st_size, stat.st_mtime_ns, None
        if path.is_dir():
            images = [image.stat() for image in list_images(path)]
            size = sum(image.st_size for image in images)
            mtime_ns = max([mtime_ns, *(image.st_mtime_ns for image in images)])
            rate = folder_fps
        return cls(
            path=str(path.resolve()),
            size=size,
            mtime_ns=mtime_ns,
            start=segment[0],
            end=segment[1],
            folder_fps=rate,
        )

    def key(self) -> str:
        """Stable short hash used as the entry's file name (a whole file's key has no segment
        nor frame-rate part, so entries prepared before those were keyed stay valid)."""
        text = f"{self.path}\0{self.size}\0{self.mtime_ns}"
        if self.start is not None or self.end is not None:
            text += f"\0{self.start!r}\0{self.end!r}"
        if self.folder_fps is not None:
            text += f"\0fps={self.folder_fps!r}"
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:24]


@dataclass
class StoreRecord:
    """The JSON record of one prepared video.

    Attributes:
        source: The source file's identity.
        status: ``ok`` or a rejection status (``corrupt``, ``truncated``, ``undecodable``,
            ``empty``, ``no_video_stream``, ``too_large``, ``too_short``, ``single_frame``,
            ``missing``, ``unreadable``, ``no_face``, ``decoder_error``, ``rejected``;
            quarantined by the decoding sandbox: ``crashed``, ``timeout``, ``out_of_memory``).
        reason: Human-readable reason when not ``ok``.
        fps: Frame rate of the stored frames.
        source_fps: Frame rate of the source stream (frame index / source_fps = time).
        frame_indices: Index in the source stream of every stored frame.
        shape: Shape of the stored array ``(T, H, W, C)``.
        truncated: True if the file was cut short and the frames before the cut were kept.
        faces: Per-frame face records when the face pipeline ran (list of dicts).
        limits: The ``data.limits`` a rejection was decided under; under other limits the
            video is prepared again (None for ``ok`` records).
    """

    source: SourceIdentity
    status: str
    reason: str = ""
    fps: float = 0.0
    source_fps: float = 0.0
    frame_indices: list[int] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)
    truncated: bool = False
    faces: list[dict[str, Any]] | None = None
    limits: dict[str, Any] | None = None
    version: int = RECORD_VERSION

    @property
    def ok(self) -> bool:
        """True when frames are stored."""
        return self.status == "ok"

    @property
    def num_frames(self) -> int:
        """Number of stored frames."""
        return self.shape[0] if self.shape else 0

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoreRecord:
        """Inverse of :meth:`to_json`."""
        fields = dict(data)
        fields["source"] = SourceIdentity(**fields["source"])
        return cls(**fields)


class PreparedStore:
    """One preprocessing configuration's folder of prepared videos.

    Args:
        root: Store root (shared by every preprocessing configuration).
        prep_key: Key of the preprocessing settings.
        settings: The settings themselves, written to ``prepare.json`` for humans.
    """

    def __init__(self, root: Path, prep_key: str, settings: dict[str, Any] | None = None) -> None:
        self.folder = Path(root) / prep_key
        self.settings = settings

    def ensure(self) -> None:
        """Create the folder and its ``prepare.json``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "prepare.json"
        if self.settings is not None and not meta.exists():
            atomic_write_json(meta, self.settings)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's preparation lock, shared by the processes preparing into it.

        Several processes may prepare into one folder at once (the ranks of a distributed run,
        each with its share of the videos). The first one, alone, deletes the temporary files of
        runs that were killed; one that finds others preparing leaves the files (they may be
        theirs) and writes beside them, after any clean-up in progress. The last one out deletes
        what its own stopped workers left. The lock dies with its process: a killed run leaves
        none.
        """
        self.ensure()
        with open(self.folder / ".lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("preparing into %s beside another process", self.folder)
            else:
                removed = remove_temporaries(self.folder)
                if removed:
                    log.info("deleted %d temporary file(s) of an interrupted run", removed)
            # Shared from here (an exclusive lock converts): others may join, none cleans up.
            fcntl.flock(handle, fcntl.LOCK_SH)
            try:
                yield
            finally:
                # Alone again (no other process prepares here): delete what this run's workers
                # left when they were stopped mid-write (e.g. beside one that filled the disk).
                with contextlib.suppress(BlockingIOError):
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    remove_temporaries(self.folder)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def record_path(self, key: str) -> Path:
        """Path of the JSON record of entry ``key``."""
        return self.folder / f"{key}.json"

    def frames_path(self, key: str) -> Path:
        """Path of the frame array of entry ``key``."""
        return self.folder / f"{key}.npy"

    def load_record(self, key: str) -> StoreRecord | None:
        """The record of entry ``key``, or None if it was never (completely) prepared."""
        try:
            data = json.loads(self.record_path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError):
            return None
        if data.get("version") != RECORD_VERSION:
            return None
        try:
            record = StoreRecord.from_json(data)
        except (TypeError, KeyError):
            return None
        if record.ok and not self.frames_path(key).exists():
            return None
        return record

    def write(self, record: StoreRecord, frames: np.ndarray | None) -> None:
        """Write an entry: the array first (if any), then its record, both atomically."""
        self.ensure()
        key = record.source.key()
        if frames is not None:
            array = np.ascontiguousarray(frames)
            atomic_write_with(self.frames_path(key), lambda handle: np.save(handle, array))
        atomic_write_json(self.record_path(key), record.to_json())

    @contextlib.contextmanager
    def frames_writer(self, key: str) -> Iterator[FrameAppender]:
        """Write the frame array of entry ``key`` piece by piece, atomically.

        The pieces go to a temporary file as they come (memory holds one piece, whatever the
        video's length); the array appears under its name, complete, when the block exits
        cleanly, and not at all when it raises. Write the record after the block.
        """
        self.ensure()
        with atomic_path(self.frames_path(key)) as tmp, open(tmp, "wb") as handle:
            appender = FrameAppender(handle)
            yield appender
            appender.finish()

    def frames(self, key: str) -> np.ndarray:
        """Memory-mapped frames ``(T, H, W, C)`` uint8 of entry ``key`` (read-only)."""
        return np.load(self.frames_path(key), mmap_mode="r")


def _npy_header(shape: tuple[int, ...], length: int | None = None) -> bytes:
    """The ``.npy`` (format 1.0) header of a C-ordered uint8 array of ``shape``.

    Args:
        shape: The array's shape.
        length: The header's total length in bytes, padded with spaces (as numpy pads its own);
            None: the shortest multiple of 64 that holds it.
    """
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    prefix = 10  # magic (6), version (2), header length (2)
    if length is None:
        length = -(-(prefix + len(text) + 1) // 64) * 64
    body = text.ljust(length - prefix - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


class FrameAppender:
    """Frames ``(n, H, W, C)`` uint8 appended to an open ``.npy`` file, the header written last.

    The first piece reserves a header long enough for any frame count; :meth:`finish` writes the
    real shape into it (padded to the same length), so the file is an ordinary ``.npy``.
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._frame_shape: tuple[int, ...] | None = None
        self._header_length = 0
        self.count = 0

    def append(self, frames: np.ndarray) -> None:
        """Append ``(n, H, W, C)`` uint8 frames (every piece the same ``H, W, C``)."""
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise ValueError(
                f"frames must be uint8 (n, H, W, C); got {frames.dtype} {frames.shape}"
            )
        if self._frame_shape is None:
            self._frame_shape = tuple(frames.shape[1:])
            header = _npy_header((_MAX_FRAMES_DIGITS, *self._frame_shape))
            self._header_length = len(header)
            self._handle.write(header)
        elif tuple(frames.shape[1:]) != self._frame_shape:
            raise ValueError(f"frames {frames.shape[1:]} differ from the first {self._frame_shape}")
        self._handle.write(np.ascontiguousarray(frames).tobytes())
        self.count += len(frames)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(T, H, W, C)`` of what was appended so far (``(0,)`` before any frame)."""
        return (self.count, *self._frame_shape) if self._frame_shape is not None else (0,)

    def finish(self) -> None:
        """Write the header of the frames appended (an empty ``(0,)`` array when none)."""
        if self._frame_shape is None:
            self._handle.write(_npy_header((0,)))
            return
        self._handle.seek(0)
        self._handle.write(_npy_header(self.shape, self._header_length))
        self._handle.seek(0, 2)
