"""The face pipeline of one video: detect, track the main face, align, crop.

:func:`process_faces` turns decoded frames into aligned face crops of the frames that have a face,
with a JSON-able record per frame (for the prepared store and prediction timelines) and a video
status: ``"ok"``, or ``"no_face"`` when the face was detected in fewer than ``min_face_fraction``
of the frames, in which case no crop is returned (a video without a usable face never gets a
made-up score downstream).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vidfer.config.faces import DATASET_MEAN, DEVICE_OPTION, DetectorName, FaceConfig
from vidfer.errors import ConfigError
from vidfer.faces.align import alignment_matrices, warp_faces
from vidfer.faces.keyframes import KeyframeDetector, Refiner
from vidfer.faces.tracks import FaceTrack, track_main_face
from vidfer.faces.types import FrameFaces

logger = logging.getLogger(__name__)


class FaceDetector(Protocol):
    """Anything that finds faces in a batch of frames."""

    def detect(self, frames: np.ndarray) -> list[FrameFaces]:
        """Detect faces in ``(T, H, W, 3)`` uint8 RGB frames, one result per frame."""
        ...


@dataclass(frozen=True)
class FaceResult:
    """Faces of one video.

    Attributes:
        status: ``"ok"`` or ``"no_face"``.
        crops: ``(N, S, S, C)`` uint8 aligned crops of the kept frames (``N = 0`` if no face).
        kept: ``(N,)`` int64 indices of the kept frames in the input.
        matrices: ``(N, 2, 3)`` float32 maps from frame pixels to crop pixels.
        face_fraction: Fraction of frames in which the main face was detected.
        frames: One JSON-able record per input frame: ``frame``, ``status`` (``ok``,
            ``interpolated``, ``missing``), ``box`` ``[x1, y1, x2, y2]``, ``landmarks``
            ``[[x, y], ...]`` and ``score`` (None where not available).
    """

    status: str
    crops: np.ndarray
    kept: np.ndarray
    matrices: np.ndarray
    face_fraction: float
    frames: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Status, face fraction, kept indices and per-frame records as a JSON-able dict."""
        return {
            "status": self.status,
            "face_fraction": round(self.face_fraction, 4),
            "kept": [int(i) for i in self.kept],
            "frames": self.frames,
        }


@functools.lru_cache(maxsize=8)
def get_detector(
    name: DetectorName, min_face_size: int = 20, batch_size: int = 32, device: str = "auto"
) -> FaceDetector:
    """Build a detector once per process and options (weights are read once).

    Args:
        name: ``"mtcnn"`` or ``"haar"``.
        min_face_size: Smallest face side searched for, in pixels.
        batch_size: Frames per detector batch.
        device: Where MTCNN runs (``faces.device``: ``auto``, ``cpu``, ``cuda`` or
            ``cuda:N``); the Haar detector (OpenCV) ignores it.

    Raises:
        AssetError: if the MTCNN weights have not been fetched (``vidfer assets fetch``).
        ConfigError: naming ``data.prepare.faces.device`` if it asks for CUDA and there is none.
    """
    if name == "mtcnn":
        from vidfer.device import resolve_device
        from vidfer.faces.mtcnn import load_mtcnn

        # In vidfer prepare this runs in a sandboxed worker: workers start with ``spawn``
        # (vidfer.io.sandbox), a fresh interpreter, so CUDA initialises safely there (a forked
        # child of a process that had initialised CUDA could not use it).
        on = resolve_device(device, option=DEVICE_OPTION)
        return load_mtcnn(min_face_size=min_face_size, batch_size=batch_size, device=on)
    if name == "haar":
        from vidfer.faces.haar import HaarDetector

        return HaarDetector(min_face_size=min_face_size)
    raise ConfigError(f"faces.detector = {name!r} is invalid: use 'mtcnn' or 'haar'")


def load_detector(cfg: FaceConfig) -> None:
    """Build ``cfg``'s detector into :func:`get_detector`'s cache and run it once on a blank
    frame.

    A preparation worker does this as it starts (the ``setup`` of
    :class:`vidfer.io.sandbox.Sandbox`), before its memory limit is set: MTCNN on a GPU creates
    a CUDA context and loads its libraries, which reserve more address space than
    ``data.limits.decode_memory_mb`` would allow. ``vidfer live`` does it before the first frame.
    """
    detector = get_detector(cfg.detector, cfg.min_face_size, cfg.batch_size, cfg.device)
    detector.detect(np.zeros((1, 120, 160, 3), np.uint8))


def check_device(cfg: FaceConfig) -> None:
    """Fail now if ``cfg`` asks MTCNN for a device this machine does not have.

    Called before any work starts (the store folder created, a worker started), so that a
    wrong ``faces.device`` fails once, with nothing written, rather than in every worker.

    Raises:
        ConfigError: naming ``data.prepare.faces.device`` and the fix.
    """
    if cfg.detector == "mtcnn" and cfg.device not in ("auto", "cpu"):  # only CUDA can be missing
        from vidfer.device import resolve_device

        resolve_device(cfg.device, option=DEVICE_OPTION)


def video_detector(cfg: FaceConfig, detector: FaceDetector | None = None) -> FaceDetector:
    """The detector to read one video with, chunk after chunk, in order.

    With ``cfg.detect_every`` above 1 and a detector that can re-detect inside boxes (MTCNN), a
    fresh :class:`~vidfer.faces.keyframes.KeyframeDetector` (it carries faces from one call to the
    next, so it belongs to one video); otherwise the detector itself.

    Args:
        cfg: Pipeline options (``cfg.device``: where MTCNN runs).
        detector: A detector to use instead of the cached one that ``cfg.detector`` names.
    """
    detector = detector or get_detector(cfg.detector, cfg.min_face_size, cfg.batch_size, cfg.device)
    if cfg.detect_every > 1 and isinstance(detector, Refiner):
        return KeyframeDetector(detector, cfg.detect_every)
    return detector


def _rounded(values: np.ndarray | None, digits: int) -> Any:
    if values is None or np.isnan(values).any():
        return None
    return np.round(values.astype(np.float64), digits).tolist()


def track_faces(
    faces: Sequence[FrameFaces], cfg: FaceConfig
) -> tuple[FaceTrack, list[dict[str, Any]]]:
    """The main face's track through a video's detections, and one JSON-able record per frame
    (:func:`track_records`)."""
    track = track_main_face(
        faces,
        min_score=cfg.min_score,
        min_iou=cfg.min_iou,
        max_gap=cfg.max_gap,
        missing=cfg.missing,
    )
    return track, track_records(track)


def track_records(track: FaceTrack) -> list[dict[str, Any]]:
    """One JSON-able record per frame of a track: ``frame`` (position in the track),
    ``status``, ``box``, ``landmarks`` and ``score`` (None where not available)."""
    return [
        {
            "frame": t,
            "status": track.status[t],
            "box": _rounded(track.boxes[t], 2),
            "landmarks": None if track.landmarks is None else _rounded(track.landmarks[t], 2),
            "score": None if np.isnan(track.scores[t]) else round(float(track.scores[t]), 4),
        }
        for t in range(len(track))
    ]


def _template(cfg: FaceConfig) -> np.ndarray | None:
    """The crop points ``(k, 2)`` to align to (None: the canonical template).

    Raises:
        ConfigError: for a ``dataset_mean`` template not resolved from a prepared store.
    """
    if cfg.template == DATASET_MEAN:
        raise ConfigError(
            "faces.template: dataset_mean is computed over a dataset by vidfer prepare; "
            "prepare the dataset, or give the (x, y) crop points"
        )
    return None if cfg.template is None else np.asarray(cfg.template, np.float32)


def crop_faces(
    frames: np.ndarray, positions: np.ndarray, track: FaceTrack, cfg: FaceConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops of the tracked face in some frames of a video.

    Args:
        frames: ``(N, H, W, 3)`` uint8 frames, at ``positions`` ``(N,)`` of the video; each must
            have a face in ``track`` (its ``kept`` frames).
        positions: Their positions in the video (the track's frame numbers).
        track: The video's main-face track.
        cfg: Pipeline options.

    Returns:
        Crops ``(N, S, S, C)`` uint8 and the matrices ``(N, 2, 3)`` from frame to crop pixels.
    """
    matrices = alignment_matrices(
        None if track.landmarks is None else track.landmarks[positions],
        track.boxes[positions],
        cfg.size,
        margin=cfg.margin,
        template=_template(cfg),
        eyes_only=cfg.eyes_only,
    )
    crops = warp_faces(frames, matrices, cfg.size, grayscale=cfg.grayscale, equalize=cfg.equalize)
    return crops, matrices


def process_faces(
    frames: np.ndarray, cfg: FaceConfig | None = None, *, detector: FaceDetector | None = None
) -> FaceResult:
    """Detect, track, align and crop the main face of a video.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB frames of one video.
        cfg: Pipeline options; the defaults when None.
        detector: A detector to use instead of the cached one that ``cfg.detector`` names.

    Returns:
        The :class:`FaceResult`.
    """
    cfg = cfg or FaceConfig()
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {frames.shape}")
    _template(cfg)  # fails before detecting on an unresolved template
    faces = video_detector(cfg, detector).detect(frames) if len(frames) else []
    track, records = track_faces(faces, cfg)
    channels = 1 if cfg.grayscale else 3
    fraction = track.found_fraction
    if not len(frames) or fraction < cfg.min_face_fraction:
        logger.info("no usable face: found in %.0f%% of %d frames", 100 * fraction, len(frames))
        return FaceResult(
            "no_face",
            np.zeros((0, cfg.size, cfg.size, channels), np.uint8),
            np.zeros(0, np.int64),
            np.zeros((0, 2, 3), np.float32),
            fraction,
            records,
        )
    kept = track.kept
    crops, matrices = crop_faces(frames[kept], kept, track, cfg)
    return FaceResult("ok", crops, kept, matrices, fraction, records)
