"""``faces.template: dataset_mean``: Kahou et al.'s alignment to the dataset's mean face shape.

A first pass over the videos to prepare runs each one's face detection and main-face tracking
(in the sandboxed workers, as preparation does) and keeps, per video, the track in the prepared
store (``<video key>.track.npz``) and the sum of its detected faces' normalised landmark shapes.
Their mean (:func:`vidfer.faces.align.mean_shape`, over every detected face of the dataset),
placed in the crop (:func:`~vidfer.faces.align.mean_shape_template` at ``faces.size`` and
``faces.margin``), is the template: it is written to ``template.json`` in the store folder
before any video is cropped. The second pass aligns every video to it, from the kept track
(faces are not detected twice). A resumed preparation and ``vidfer predict`` read the same
``template.json``, so every crop of a store is aligned to one template.

This module does not import torch.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.config.faces import DATASET_MEAN, FaceConfig
from vidfer.data.preprocess import video_limits
from vidfer.data.store import PreparedStore, SourceIdentity
from vidfer.data.stream import Detected, Segment, VideoStream, detect_faces, piece_frames_for
from vidfer.errors import ConfigError, VideoError
from vidfer.faces.align import mean_shape_template, normalise_shape
from vidfer.faces.pipeline import load_detector
from vidfer.faces.tracks import OK, FaceTrack
from vidfer.io.atomic import atomic_write_json, atomic_write_with
from vidfer.io.frame_folder import FRAME_FOLDER_FPS
from vidfer.io.sandbox import Failure, Sandbox
from vidfer.io.video import probe_source
from vidfer.progress import track

log = logging.getLogger(__name__)

TEMPLATE_FILE = "template.json"


def wants_dataset_mean(prep: PrepareConfig) -> bool:
    """Whether ``prep`` aligns faces to the dataset's mean shape."""
    faces = prep.face_config()
    return faces is not None and faces.template == DATASET_MEAN


def read_template(store: PreparedStore) -> list[list[float]] | None:
    """The store's dataset-mean crop points ``(k, 2)``, or None before the first pass ended."""
    try:
        data = json.loads((store.folder / TEMPLATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return [[float(x), float(y)] for x, y in data["points"]]


def resolved_faces(prep: PrepareConfig, store: PreparedStore) -> FaceConfig | None:
    """``prep``'s face options with a ``dataset_mean`` template replaced by the store's points.

    Raises:
        ConfigError: if the template is ``dataset_mean`` and the store has none yet.
    """
    faces = prep.face_config()
    if faces is None or faces.template != DATASET_MEAN:
        return faces
    points = read_template(store)
    if points is None:
        raise ConfigError(
            f"faces.template: dataset_mean: {store.folder / TEMPLATE_FILE} does not exist; "
            "run vidfer prepare on the dataset first"
        )
    return faces.model_copy(update={"template": tuple(tuple(point) for point in points)})


def track_path(store: PreparedStore, key: str) -> Path:
    """Where the first pass keeps a video's main-face track."""
    return store.folder / f"{key}.track.npz"


def _save_track(path: Path, found: Detected) -> None:
    arrays: dict[str, Any] = {
        "boxes": found.track.boxes,
        "scores": found.track.scores,
        "status": np.array(found.track.status),
        "source": found.source,
    }
    if found.track.landmarks is not None:
        arrays["landmarks"] = found.track.landmarks
    atomic_write_with(path, lambda handle: np.savez(handle, **arrays))


def load_track(path: Path) -> Detected | None:
    """A kept detection pass, or None when there is none."""
    try:
        with np.load(path) as data:
            landmarks = data.get("landmarks", None)
            face_track = FaceTrack(
                data["boxes"], data["scores"], landmarks, tuple(str(s) for s in data["status"])
            )
            return Detected(face_track, data["source"])
    except FileNotFoundError:
        return None


def _shape_sum(face_track: FaceTrack) -> tuple[np.ndarray | None, int]:
    """The sum of the detected faces' normalised landmark shapes ``(k, 2)`` and their count."""
    if face_track.landmarks is None:
        return None, 0
    shapes = [
        normalise_shape(points)
        for points, status in zip(face_track.landmarks, face_track.status, strict=True)
        if status == OK and not np.isnan(points).any()
    ]
    if not shapes:
        return None, 0
    return np.sum(shapes, axis=0), len(shapes)


def _detect_task(
    path: str,
    identity: SourceIdentity,
    prep: PrepareConfig,
    limits: LimitsConfig,
    segment: Segment,
    store_folder: str,
) -> tuple[np.ndarray | None, int]:
    """Worker entry point of the first pass: track one video's main face, keep the track.

    Returns:
        The sum of its detected faces' normalised shapes and their count (``(None, 0)`` for a
        video that cannot be decoded: the second pass records why).
    """
    faces = prep.face_config()
    assert faces is not None
    kept = Path(store_folder) / f"{identity.key()}.track.npz"
    found = load_track(kept)
    if found is None:
        try:
            folder_fps = identity.folder_fps or FRAME_FOLDER_FPS
            info = probe_source(path, video_limits(limits), folder_fps)
            pieces = piece_frames_for(info, limits)
            stream = VideoStream(
                Path(path), prep, limits, pieces, segment, sandboxed=False, folder_fps=folder_fps
            )
            found = detect_faces(stream, faces)
        except VideoError:
            return None, 0
        _save_track(kept, found)
    return _shape_sum(found.track)


def ensure_template(
    todo: Sequence[tuple[Path, SourceIdentity, Segment]],
    store: PreparedStore,
    prep: PrepareConfig,
    limits: LimitsConfig,
    workers: int,
) -> None:
    """Compute and write the store's dataset-mean template unless it is there already.

    Args:
        todo: ``(path, identity, segment)`` of every video still to prepare.
        store: The store folder (holds the tracks and the template).
        prep: The preprocessing settings (faces with ``template: dataset_mean``).
        limits: Limits on untrusted input.
        workers: Worker processes.

    Raises:
        ConfigError: if no face of the dataset has landmarks (no template can be made).
    """
    if read_template(store) is not None or not todo:
        return
    faces = prep.face_config()
    assert faces is not None
    tasks = [
        (str(path), identity, prep, limits, segment, str(store.folder))
        for path, identity, segment in todo
    ]
    total: np.ndarray | None = None
    count = 0
    with Sandbox(
        _detect_task,
        workers,
        timeout_s=limits.decode_timeout_s,
        memory_mb=limits.decode_memory_mb,
        setup=functools.partial(load_detector, faces),  # before the memory limit (a GPU's)
    ) as sandbox:
        for _, outcome in track(sandbox.map(tasks), total=len(tasks), description="mean face"):
            if isinstance(outcome, Failure) or outcome[0] is None:
                continue  # the second pass quarantines or rejects it
            shapes, number = outcome
            total = shapes if total is None else total + shapes
            count += number
    if total is None:
        raise ConfigError(
            "faces.template: dataset_mean: no face with landmarks was found in the dataset; "
            "use the mtcnn detector, or give the template's (x, y) points"
        )
    mean = normalise_shape(total / count)
    points = mean_shape_template(mean, size=faces.size, margin=faces.margin)
    atomic_write_json(
        store.folder / TEMPLATE_FILE,
        {"points": points.tolist(), "mean_shape": mean.tolist(), "faces": count},
    )
    log.info("dataset mean shape of %d face(s) written to %s", count, store.folder)
