"""``vidfer prepare``: decode every video of a manifest once into the prepared store.

Each video is probed (limits checked before decoding), decoded, resized so its short side is
``size``, optionally center-cropped and converted to grayscale, and written to the store. A file
that cannot be used is recorded with its status and reason and listed in ``rejects.jsonl``; the
run goes on. Entries already in the store are not decoded again, so an interrupted run resumes
where it stopped.

Untrusted files are decoded only in worker processes (:class:`vidfer.io.sandbox.Sandbox`, as many
as ``data.workers``), never in the calling process: a video that crashes the decoder, hangs or
exhausts its memory allowance is quarantined (recorded with the reason, named in the log and in
``rejects.jsonl``) and the other videos go on.

This module does not import torch: worker processes start quickly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidfer import faults
from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.data.manifest import ManifestRow
from vidfer.data.store import PreparedStore, SourceIdentity, StoreRecord
from vidfer.errors import (
    CrashedVideoError,
    OutOfMemoryVideoError,
    QuarantinedVideoError,
    TimedOutVideoError,
    VideoError,
)
from vidfer.faces.pipeline import FaceConfig, process_faces
from vidfer.io.atomic import atomic_write_text
from vidfer.io.frame_folder import FRAME_FOLDER_FPS
from vidfer.io.sandbox import Failure, Sandbox
from vidfer.io.video import decode
from vidfer.io.video_probe import VideoLimits
from vidfer.progress import track

log = logging.getLogger(__name__)


def video_limits(config: LimitsConfig) -> VideoLimits:
    """The I/O layer's limits from their config section."""
    return VideoLimits(
        max_file_bytes=int(config.max_file_mb * 1024 * 1024),
        max_width=config.max_width,
        max_height=config.max_height,
        max_duration_s=config.max_duration_s,
        max_frames=config.max_frames,
    )


def open_store(root: Path, prep: PrepareConfig) -> PreparedStore:
    """The store folder for one preprocessing configuration."""
    return PreparedStore(root, prep.key(), prep.model_dump())


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Center-crop frames ``(T, H, W, C)`` to ``(T, size, size, C)`` (no-op on a short side)."""
    height, width = frames.shape[1:3]
    top = max((height - size) // 2, 0)
    left = max((width - size) // 2, 0)
    return frames[:, top : top + size, left : left + size]


def to_grayscale(frames: np.ndarray) -> np.ndarray:
    """RGB frames ``(T, H, W, 3)`` to grayscale repeated on 3 channels ``(T, H, W, 3)``."""
    # cv2 converts a (T*H, W, 3) image in one call: stack the frames vertically.
    count, height, width, _ = frames.shape
    gray = cv2.cvtColor(
        np.ascontiguousarray(frames).reshape(count * height, width, 3), cv2.COLOR_RGB2GRAY
    )  # (T*H, W)
    gray = gray.reshape(count, height, width, 1)  # (T, H, W, 1)
    return np.repeat(gray, 3, axis=3)  # (T, H, W, 3)


def finish_frames(frames: np.ndarray, prep: PrepareConfig) -> np.ndarray:
    """The last, per-frame steps of preprocessing: decoded frames or face crops to stored frames.

    Center crop (without faces, when ``prep.crop``), gray crops to 3 channels, grayscale.
    Frame by frame, so a video can be finished in pieces.
    """
    if prep.face_config() is None and prep.crop:
        frames = center_crop(frames, prep.size)
    if frames.shape[3] == 1:
        frames = np.repeat(frames, 3, axis=3)  # gray face crops: (T, S, S, 1) -> (T, S, S, 3)
    if prep.grayscale:
        frames = to_grayscale(frames)
    return frames


def no_face_reason(fraction: float, frames: int, faces: FaceConfig) -> str:
    """The rejection reason of a video whose main face was found in too few frames."""
    return (
        f"main face found in {fraction:.0%} of {frames} frames, "
        f"below faces.min_face_fraction={faces.min_face_fraction}"
    )


def _segment(
    frames: np.ndarray,
    indices: np.ndarray,
    source_fps: float,
    start: float | None,
    end: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    if start is None and end is None:
        return frames, indices
    times = indices / source_fps  # (T,) seconds of each kept frame
    keep = np.ones(len(indices), dtype=bool)
    if start is not None:
        keep &= times >= start
    if end is not None:
        keep &= times < end
    return frames[keep], indices[keep]


def prepare_one(
    path: Path,
    identity: SourceIdentity,
    prep: PrepareConfig,
    limits: VideoLimits,
    segment: tuple[float | None, float | None] = (None, None),
) -> tuple[StoreRecord, np.ndarray | None]:
    """Decode and preprocess one video (a file or a frame folder) in memory.

    Args:
        path: The video file or frame folder.
        identity: Its identity (a frame folder's frame rate is ``identity.folder_fps``).
        prep: Preprocessing settings.
        limits: Bounds for untrusted input.
        segment: The (start, end) seconds to keep, or (None, None) for all.

    Returns:
        The record and the frames ``(T, size, size, 3)`` uint8 (None when rejected).
    """
    faces = prep.face_config()
    try:
        # The face detector wants the full resolution; the crops have their own size.
        short_side = None if faces is not None else prep.size
        video = decode(
            path,
            fps=prep.fps,
            short_side=short_side,
            max_frames=prep.max_frames,
            limits=limits,
            frame_folder_fps=identity.folder_fps or FRAME_FOLDER_FPS,
        )
    except VideoError as error:
        return StoreRecord(source=identity, status=error.status, reason=error.reason), None
    except MemoryError:
        raise  # the sandbox quarantines the video
    except Exception as error:  # whatever a hostile file makes the decoder raise
        reason = f"the decoder failed ({type(error).__name__}: {error}); re-encode the file"
        return StoreRecord(source=identity, status="decoder_error", reason=reason), None
    frames, indices = _segment(video.frames, video.frame_indices, video.info.fps, *segment)
    if len(frames) == 1 and prep.max_frames != 1:
        reason = "one frame: a still image, not a video; remove it from the manifest"
        return StoreRecord(source=identity, status="single_frame", reason=reason), None
    face_records = None
    if faces is not None and len(frames):
        found = process_faces(frames, faces)
        # Per-frame records name source frames, so timelines can place every decoded frame.
        face_records = [{**item, "frame": int(indices[item["frame"]])} for item in found.frames]
        if found.status != "ok":
            reason = no_face_reason(found.face_fraction, len(frames), faces)
            record = StoreRecord(
                source=identity,
                status=found.status,
                reason=reason,
                fps=float(video.fps),
                source_fps=float(video.info.fps),
                faces=face_records,
            )
            return record, None
        frames, indices = found.crops, indices[found.kept]
    if len(frames) < prep.min_frames:
        reason = f"{len(frames)} frame(s), fewer than data.prepare.min_frames={prep.min_frames}"
        return StoreRecord(source=identity, status="too_short", reason=reason), None
    frames = finish_frames(frames, prep)
    record = StoreRecord(
        source=identity,
        status="ok",
        fps=float(video.fps),
        source_fps=float(video.info.fps),
        frame_indices=[int(i) for i in indices],
        shape=list(frames.shape),
        truncated=bool(video.truncated),
        faces=face_records,
    )
    return record, frames


def admit(record: StoreRecord, limits: LimitsConfig) -> StoreRecord:
    """Apply the limits' policies to a prepared video's record.

    A file cut short is rejected as ``truncated`` unless ``limits.keep_truncated``. Rejections
    remember ``limits``, so that they are decided again under other limits.
    """
    if record.ok and record.truncated and not limits.keep_truncated:
        record = dataclasses.replace(
            record,
            status="truncated",
            reason=(
                f"the file ends inside the video data after {record.num_frames} frame(s): it "
                "was cut short; re-download it, or set data.limits.keep_truncated=true to keep "
                "the frames before the cut"
            ),
        )
    if not record.ok:
        record = dataclasses.replace(record, limits=limits.model_dump())
    return record


def _prepare_task(
    path: str,
    identity: SourceIdentity,
    prep: PrepareConfig,
    limits: LimitsConfig,
    segment: tuple[float | None, float | None],
    store_root: str,
) -> StoreRecord:
    """Worker entry point: prepare one video and write it to the store."""
    faults.inject("decode", Path(path).name)
    record, frames = prepare_one(Path(path), identity, prep, video_limits(limits), segment)
    record = admit(record, limits)
    open_store(Path(store_root), prep).write(record, frames if record.ok else None)
    return record


_QUARANTINED: dict[str, type[QuarantinedVideoError]] = {
    error.status: error for error in (CrashedVideoError, TimedOutVideoError, OutOfMemoryVideoError)
}


def quarantine_error(
    path: object, failure: Failure, limits: LimitsConfig, what: str
) -> QuarantinedVideoError:
    """The error of a video whose sandboxed worker crashed, overran its time or its memory.

    Args:
        path: The video file.
        failure: What the sandbox saw.
        limits: The limits the worker ran under (the reason names the one to raise).
        what: The start of the reason, e.g. ``quarantined: preparing it failed``.

    Returns:
        The error of ``failure.status``, its reason ``WHAT, what happened[; the limit to
        raise]``.
    """
    option = {
        "timeout": f"; raise data.limits.decode_timeout_s={limits.decode_timeout_s:g} to retry",
        "out_of_memory": f"; raise data.limits.decode_memory_mb={limits.decode_memory_mb} to retry",
    }.get(failure.status, "")
    return _QUARANTINED[failure.status](path, f"{what}, {failure.reason}{option}")


def _quarantined(identity: SourceIdentity, failure: Failure, limits: LimitsConfig) -> StoreRecord:
    """The record of a video whose worker crashed, overran its time or its memory."""
    error = quarantine_error(identity.path, failure, limits, "quarantined: preparing it failed")
    return StoreRecord(
        source=identity, status=error.status, reason=error.reason, limits=limits.model_dump()
    )


@dataclass(frozen=True)
class PrepareResult:
    """The outcome of preparing a manifest.

    Attributes:
        store: The store folder used.
        records: ``video_id`` -> record, for every row (``ok`` or rejected).
        decoded: How many videos were decoded by this call (0 on a fully cached re-run).
    """

    store: PreparedStore
    records: dict[str, StoreRecord]
    decoded: int

    def rejects(self, rows: Sequence[ManifestRow]) -> list[dict[str, Any]]:
        """One JSON-able dict per rejected row: line, path, video_id, status, reason."""
        out = []
        for row in rows:
            record = self.records[row.video_id]
            if not record.ok:
                out.append(
                    {
                        "line": row.line,
                        "path": row.rel_path,
                        "video_id": row.video_id,
                        "status": record.status,
                        "reason": record.reason,
                    }
                )
        return out


def _unusable(row: ManifestRow, status: str, reason: str) -> StoreRecord:
    """The record of a row refused before any decoding (not kept in the store)."""
    identity = SourceIdentity(path=str(row.path), size=-1, mtime_ns=-1)
    return StoreRecord(source=identity, status=status, reason=reason)


def _bad_name(row: ManifestRow) -> StoreRecord | None:
    """A rejection when the row's path is not valid UTF-8 text (legacy file-name encodings)."""
    try:
        row.rel_path.encode("utf-8")
    except UnicodeEncodeError:
        raw = row.rel_path.encode("utf-8", "surrogateescape")
        reason = (
            f"the file name {raw!r} is not UTF-8; rename it (e.g. convmv -f latin1 -t utf-8) "
            "and write the new name in the manifest"
        )
        return _unusable(row, "bad_name", reason)
    return None


def _cached(store: PreparedStore, key: str, limits: LimitsConfig) -> StoreRecord | None:
    """The stored record of an entry, unless it was rejected under other limits."""
    record = store.load_record(key)
    if record is None or (record.limits is not None and record.limits != limits.model_dump()):
        return None
    return record


def prepare_rows(
    rows: Sequence[ManifestRow],
    *,
    store_root: Path,
    prep: PrepareConfig,
    limits: LimitsConfig,
    workers: int = 1,
    frame_folder_fps: float = FRAME_FOLDER_FPS,
) -> PrepareResult:
    """Make sure every row is in the store; decode only what is missing.

    A row's path may name a video file or a frame folder (:mod:`vidfer.io.frame_folder`): its
    images are read into the store as they are (never re-encoded), under the same limits,
    sandbox, rejections and resumability.

    Args:
        rows: Manifest rows to prepare.
        store_root: The store root folder.
        prep: Preprocessing settings.
        limits: Limits on untrusted input.
        workers: Decoding worker processes.
        frame_folder_fps: The nominal frame rate of the frame folders (``data.frame_folder_fps``).
    """
    store = open_store(store_root, prep)
    store.ensure()
    records: dict[str, StoreRecord] = {}
    todo: list[tuple[ManifestRow, SourceIdentity]] = []
    for row in rows:
        refused = _bad_name(row)
        if refused is not None:
            records[row.video_id] = refused
            continue
        try:
            identity = SourceIdentity.of(row.path, (row.start, row.end), frame_folder_fps)
        except (FileNotFoundError, NotADirectoryError):
            records[row.video_id] = _unusable(row, "missing", "file not found")
            continue
        except OSError as error:  # e.g. a frame folder that cannot be listed
            reason = f"cannot read it ({error.strerror}); check its permissions"
            records[row.video_id] = _unusable(row, "unreadable", reason)
            continue
        cached = _cached(store, identity.key(), limits)
        if cached is not None:
            records[row.video_id] = admit(cached, limits)
        else:
            todo.append((row, identity))
    if todo:
        with store.lock():
            # Another process may have prepared some while this one waited for the lock.
            for row, identity in todo:
                cached = _cached(store, identity.key(), limits)
                if cached is not None:
                    records[row.video_id] = admit(cached, limits)
            todo = [item for item in todo if item[0].video_id not in records]
            _prepare_in_sandbox(todo, records, store, prep, limits, workers)
        log.info("prepared %d video(s) into %s", len(todo), store.folder)
    return PrepareResult(store=store, records=records, decoded=len(todo))


def _prepare_in_sandbox(
    todo: Sequence[tuple[ManifestRow, SourceIdentity]],
    records: dict[str, StoreRecord],
    store: PreparedStore,
    prep: PrepareConfig,
    limits: LimitsConfig,
    workers: int,
) -> None:
    """Prepare ``todo`` in worker processes into ``records``; quarantine what kills a worker."""
    tasks = [
        (str(row.path), identity, prep, limits, (row.start, row.end), str(store.folder.parent))
        for row, identity in todo
    ]
    with Sandbox(
        _prepare_task, workers, timeout_s=limits.decode_timeout_s, memory_mb=limits.decode_memory_mb
    ) as sandbox:
        for index, outcome in track(sandbox.map(tasks), total=len(tasks), description="preparing"):
            row, identity = todo[index]
            if isinstance(outcome, Failure):
                outcome = _quarantined(identity, outcome, limits)
                store.write(outcome, None)
                log.warning("%s: %s", row.rel_path, outcome.reason)
            records[row.video_id] = outcome


def write_rejects(path: Path, rejects: Sequence[dict[str, Any]]) -> None:
    """Write ``rejects.jsonl`` atomically (one JSON object per rejected video)."""
    atomic_write_text(path, "".join(json.dumps(item, sort_keys=True) + "\n" for item in rejects))
