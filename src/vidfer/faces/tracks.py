"""Main-face tracks: one face per frame, followed through the video by box overlap.

Expression datasets keep the largest face of each frame (Ayral, 2.2.3.1). Choosing per frame lets a
passer-by who is briefly larger take over single frames; a track instead starts from the largest
confident face of the video and follows it forwards and backwards, frame to frame, by IoU with the
last matched box. When the face is missed in a frame the last box is kept for matching, so a face
that reappears near where it was is picked up again. After ``max_gap`` missed frames the track is
re-acquired from the largest confident face of the frame. Detection every N frames with the faces
carried between is :class:`vidfer.faces.keyframes.KeyframeDetector`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidfer.config.faces import MissingPolicy
from vidfer.faces.types import FrameFaces

OK = "ok"
MISSING = "missing"
INTERPOLATED = "interpolated"


@dataclass(frozen=True)
class FaceTrack:
    """The main face of each frame of a video.

    Attributes:
        boxes: ``(T, 4)`` float32, NaN where missing.
        scores: ``(T,)`` float32 detection scores, NaN where missing or interpolated.
        landmarks: ``(T, k, 2)`` float32, NaN where missing; None when the detector gives none.
        status: Per frame ``"ok"`` (detected), ``"interpolated"`` (filled between detections) or
            ``"missing"``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None
    status: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.status)

    @property
    def kept(self) -> np.ndarray:
        """``(N,)`` int64 indices of the frames that have a face (detected or interpolated)."""
        return np.array([i for i, s in enumerate(self.status) if s != MISSING], dtype=np.int64)

    @property
    def found_fraction(self) -> float:
        """Fraction of frames where the face was detected (interpolated frames do not count)."""
        return self.status.count(OK) / len(self.status) if self.status else 0.0


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(4,)`` box with ``(n, 4)`` boxes, ``(n,)``."""
    lt = np.maximum(box[:2], boxes[:, :2])  # (n, 2)
    rb = np.minimum(box[2:], boxes[:, 2:])  # (n, 2)
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-9)


def _largest(faces: FrameFaces, min_score: float) -> int | None:
    """Index of the largest face scoring at least ``min_score``, or None."""
    confident = np.flatnonzero(faces.scores >= min_score)
    if not len(confident):
        return None
    return int(confident[np.argmax(faces.areas[confident])])


def _follow(
    faces: Sequence[FrameFaces],
    order: range,
    start_box: np.ndarray,
    choice: list[int | None],
    *,
    min_score: float,
    min_iou: float,
    max_gap: int,
) -> None:
    """Fill ``choice[t]`` for ``t`` in ``order`` by linking from ``start_box``."""
    reference = start_box
    gap = 0
    for t in order:
        frame = faces[t]
        picked = None
        if gap > max_gap:
            # The face has been gone too long for its last box to mean anything: re-acquire.
            picked = _largest(frame, min_score)
        elif len(frame):
            overlaps = iou(reference, frame.boxes)
            best = int(np.argmax(overlaps))
            if overlaps[best] >= min_iou:
                picked = best
        choice[t] = picked
        if picked is None:
            gap += 1
        else:
            reference = frame.boxes[picked]
            gap = 0


def _landmark_count(faces: Sequence[FrameFaces]) -> int | None:
    for frame in faces:
        if frame.landmarks is not None:
            return frame.landmarks.shape[1]
    return None


def _interpolate(
    boxes: np.ndarray, landmarks: np.ndarray | None, status: list[str], max_gap: int
) -> None:
    """Linearly fill interior runs of at most ``max_gap`` missing frames, in place."""
    detected = [i for i, s in enumerate(status) if s == OK]
    for before, after in itertools.pairwise(detected):
        if after - before - 1 == 0 or after - before - 1 > max_gap:
            continue
        for t in range(before + 1, after):
            alpha = (t - before) / (after - before)
            boxes[t] = (1 - alpha) * boxes[before] + alpha * boxes[after]
            if landmarks is not None:
                landmarks[t] = (1 - alpha) * landmarks[before] + alpha * landmarks[after]
            status[t] = INTERPOLATED


def track_main_face(
    faces: Sequence[FrameFaces],
    *,
    min_score: float = 0.9,
    min_iou: float = 0.3,
    max_gap: int = 25,
    missing: MissingPolicy = "drop",
) -> FaceTrack:
    """Follow the video's main face through the per-frame detections.

    Args:
        faces: Detections of every frame, in order.
        min_score: Score a face needs to start (or re-acquire) the track; when no face of the video
            reaches it, the largest face of any score starts the track.
        min_iou: Overlap with the track's last box that a detection needs to continue the track.
        max_gap: Missed frames after which the track is re-acquired, and the longest run of missed
            frames that ``missing="interpolate"`` fills.
        missing: ``"drop"`` leaves missed frames ``"missing"``; ``"interpolate"`` fills runs between
            two detections linearly (box and landmarks) and marks them ``"interpolated"``. Frames
            before the first or after the last detection stay ``"missing"``.

    Returns:
        The :class:`FaceTrack`.
    """
    if missing not in ("drop", "interpolate"):
        raise ValueError(f"missing must be 'drop' or 'interpolate', got {missing!r}")
    num = len(faces)
    k = _landmark_count(faces)
    boxes = np.full((num, 4), np.nan, np.float32)
    scores = np.full(num, np.nan, np.float32)
    landmarks = None if k is None else np.full((num, k, 2), np.nan, np.float32)
    choice: list[int | None] = [None] * num

    seed_frame, seed_face, seed_area = None, None, -1.0
    for threshold in (min_score, -np.inf):
        for t, frame in enumerate(faces):
            j = _largest(frame, threshold)
            if j is not None and frame.areas[j] > seed_area:
                seed_frame, seed_face, seed_area = t, j, float(frame.areas[j])
        if seed_frame is not None:
            break

    if seed_frame is not None and seed_face is not None:
        choice[seed_frame] = seed_face
        seed_box = faces[seed_frame].boxes[seed_face]
        for order in (range(seed_frame + 1, num), range(seed_frame - 1, -1, -1)):
            _follow(
                faces,
                order,
                seed_box,
                choice,
                min_score=min_score,
                min_iou=min_iou,
                max_gap=max_gap,
            )

    status = [MISSING] * num
    for t, j in enumerate(choice):
        if j is None:
            continue
        frame = faces[t]
        boxes[t] = frame.boxes[j]
        scores[t] = frame.scores[j]
        if landmarks is not None and frame.landmarks is not None:
            landmarks[t] = frame.landmarks[j]
        status[t] = OK
    if missing == "interpolate":
        _interpolate(boxes, landmarks, status, max_gap)
    return FaceTrack(boxes, scores, landmarks, tuple(status))
