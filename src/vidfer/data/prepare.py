"""``vidfer prepare``: decode every video of a manifest once into the prepared store.

Each video is probed (limits checked before decoding), decoded, resized so its short side is
``size``, optionally center-cropped and converted to grayscale, and written to the store. A file
that cannot be used is recorded with its status and reason and listed in ``rejects.jsonl``; the
run goes on. Entries already in the store are not decoded again, so an interrupted run resumes
where it stopped. Several worker processes prepare videos in parallel.

This module does not import torch: worker processes start quickly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.data.manifest import ManifestRow
from vidfer.data.store import PreparedStore, SourceIdentity, StoreRecord
from vidfer.errors import VideoError
from vidfer.faces.pipeline import FaceConfig, process_faces
from vidfer.io.atomic import atomic_write_text
from vidfer.io.video import VideoLimits, decode
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
    """Decode and preprocess one video in memory.

    Returns:
        The record and the frames ``(T, size, size, 3)`` uint8 (None when rejected).
    """
    faces = prep.face_config()
    try:
        # The face detector wants the full resolution; the crops have their own size.
        short_side = None if faces is not None else prep.size
        video = decode(
            path, fps=prep.fps, short_side=short_side, max_frames=prep.max_frames, limits=limits
        )
    except VideoError as error:
        return StoreRecord(source=identity, status=error.status, reason=error.reason), None
    frames, indices = _segment(video.frames, video.frame_indices, video.info.fps, *segment)
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


def _prepare_task(
    path: str,
    identity: SourceIdentity,
    prep: PrepareConfig,
    limits: VideoLimits,
    segment: tuple[float | None, float | None],
    store_root: str,
) -> StoreRecord:
    """Worker entry point: prepare one video and write it to the store."""
    record, frames = prepare_one(Path(path), identity, prep, limits, segment)
    open_store(Path(store_root), prep).write(record, frames)
    return record


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


def _missing(row: ManifestRow) -> StoreRecord:
    identity = SourceIdentity(path=str(row.path), size=-1, mtime_ns=-1)
    return StoreRecord(source=identity, status="missing", reason="file not found")


def prepare_rows(
    rows: Sequence[ManifestRow],
    *,
    store_root: Path,
    prep: PrepareConfig,
    limits: LimitsConfig,
    workers: int = 1,
) -> PrepareResult:
    """Make sure every row is in the store; decode only what is missing.

    Args:
        rows: Manifest rows to prepare.
        store_root: The store root folder.
        prep: Preprocessing settings.
        limits: Limits on untrusted input.
        workers: Worker processes (1 prepares in this process).
    """
    store = open_store(store_root, prep)
    store.ensure()
    io_limits = video_limits(limits)
    records: dict[str, StoreRecord] = {}
    todo: list[tuple[ManifestRow, SourceIdentity]] = []
    for row in rows:
        try:
            identity = SourceIdentity.of(row.path, (row.start, row.end))
        except FileNotFoundError:
            records[row.video_id] = _missing(row)
            continue
        cached = store.load_record(identity.key())
        if cached is not None:
            records[row.video_id] = cached
        else:
            todo.append((row, identity))

    def task_args(item: tuple[ManifestRow, SourceIdentity]) -> tuple[Any, ...]:
        row, identity = item
        return (str(row.path), identity, prep, io_limits, (row.start, row.end), str(store_root))

    if todo and workers > 1:
        # spawn: workers must not inherit the parent's threads (torch, OpenMP) through fork.
        with ProcessPoolExecutor(
            max_workers=min(workers, len(todo)), mp_context=get_context("spawn")
        ) as pool:
            futures = [pool.submit(_prepare_task, *task_args(item)) for item in todo]
            for (row, _), future in zip(
                todo, track(futures, total=len(todo), description="preparing"), strict=True
            ):
                records[row.video_id] = future.result()
    else:
        for item in track(todo, total=len(todo), description="preparing"):
            records[item[0].video_id] = _prepare_task(*task_args(item))
    if todo:
        log.info("prepared %d video(s) into %s", len(todo), store.folder)
    return PrepareResult(store=store, records=records, decoded=len(todo))


def write_rejects(path: Path, rejects: Sequence[dict[str, Any]]) -> None:
    """Write ``rejects.jsonl`` atomically (one JSON object per rejected video)."""
    atomic_write_text(path, "".join(json.dumps(item, sort_keys=True) + "\n" for item in rejects))
