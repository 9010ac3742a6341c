"""``vidfer prepare``: decode every video of a manifest once into the prepared store.

Each video is probed (limits checked before decoding), decoded, resized so its short side is
``size``, optionally center-cropped and converted to grayscale, and written to the store, piece
by piece (:mod:`vidfer.data.stream`): memory holds one piece, whatever the video's length. A file
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
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.data.face_template import (
    ensure_template,
    load_track,
    resolved_faces,
    track_path,
    wants_dataset_mean,
)
from vidfer.data.manifest import ManifestRow
from vidfer.data.preprocess import quarantine_error, video_limits
from vidfer.data.store import FrameAppender, PreparedStore, SourceIdentity, StoreRecord
from vidfer.data.stream import Segment, piece_frames_for, stream_video
from vidfer.errors import VideoError
from vidfer.faces.pipeline import check_device, load_detector
from vidfer.io.atomic import atomic_write_text
from vidfer.io.frame_folder import FRAME_FOLDER_FPS
from vidfer.io.sandbox import Failure, Sandbox
from vidfer.io.video import probe_source
from vidfer.progress import track

log = logging.getLogger(__name__)


def open_store(root: Path, prep: PrepareConfig) -> PreparedStore:
    """The store folder for one preprocessing configuration."""
    return PreparedStore(root, prep.key(), prep.stored_settings())


class _Rejected(Exception):
    """Raised inside a store write to drop its array: the video's record is a rejection."""

    def __init__(self, record: StoreRecord) -> None:
        super().__init__(record.status)
        self.record = record


def prepare_into(
    store: PreparedStore,
    path: Path,
    identity: SourceIdentity,
    prep: PrepareConfig,
    limits: LimitsConfig,
    segment: Segment = (None, None),
) -> StoreRecord:
    """Decode and preprocess one video (a file or a frame folder) into the store, piece by piece.

    Decoding, the face pipeline and the write go one piece at a time
    (:func:`vidfer.data.stream.stream_video`; pieces sized by
    :func:`~vidfer.data.stream.piece_frames_for` from the probed frame size and
    ``limits.decode_memory_mb``), so memory is bounded by a piece, not by the video's length or
    resolution. The array is written as it comes and appears, complete, only when the video is
    kept; then the record is written.

    Args:
        store: The store folder to write into.
        path: The video file or frame folder.
        identity: Its identity (a frame folder's frame rate is ``identity.folder_fps``).
        prep: Preprocessing settings.
        limits: Limits on untrusted input.
        segment: The (start, end) seconds to keep, or (None, None) for all.

    Returns:
        The record written (``ok`` or a rejection).
    """
    try:
        with store.frames_writer(identity.key()) as out:
            record = _stream_into(out, store, path, identity, prep, limits, segment)
            if not record.ok:
                raise _Rejected(record)
    except _Rejected as rejected:
        record = rejected.record
    store.write(record, None)
    track_path(store, identity.key()).unlink(missing_ok=True)  # the first pass's, used now
    return record


def _stream_into(
    out: FrameAppender,
    store: PreparedStore,
    path: Path,
    identity: SourceIdentity,
    prep: PrepareConfig,
    limits: LimitsConfig,
    segment: Segment,
) -> StoreRecord:
    """Append the video's stored frames to ``out``; the record of what was appended."""
    detected = None
    if wants_dataset_mean(prep):  # faces tracked by the first pass, aligned to its template
        detected = load_track(track_path(store, identity.key()))
    try:
        folder_fps = identity.folder_fps or FRAME_FOLDER_FPS
        info = probe_source(path, video_limits(limits), folder_fps)
        stream = stream_video(
            path,
            prep,
            limits,
            piece_frames_for(info, limits),
            segment=segment,
            sandboxed=False,
            folder_fps=folder_fps,
            faces=resolved_faces(prep, store),
            detected=detected,
        )
        for _, frames in stream.pieces():
            out.append(frames)
    except VideoError as error:
        return StoreRecord(source=identity, status=error.status, reason=error.reason)
    if stream.decoded == 1 and prep.max_frames != 1:
        reason = "one frame: a still image, not a video; remove it from the manifest"
        return StoreRecord(source=identity, status="single_frame", reason=reason)
    return admit(dataclasses.replace(stream.record(), source=identity), limits)


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
    segment: Segment,
    store_root: str,
) -> StoreRecord:
    """Worker entry point: prepare one video into the store."""
    store = open_store(Path(store_root), prep)
    return prepare_into(store, Path(path), identity, prep, limits, segment)


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

    Raises:
        ConfigError: if ``faces.device`` asks for a GPU this machine does not have (before
            anything is written).
    """
    faces = prep.face_config()
    if faces is not None:
        check_device(faces)  # a missing GPU fails here, before the store folder exists
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
            if wants_dataset_mean(prep):
                videos = [(row.path, identity, (row.start, row.end)) for row, identity in todo]
                ensure_template(videos, store, prep, limits, workers)
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
    faces = prep.face_config()
    with Sandbox(
        _prepare_task,
        workers,
        timeout_s=limits.decode_timeout_s,
        memory_mb=limits.decode_memory_mb,
        setup=None if faces is None else functools.partial(load_detector, faces),
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
