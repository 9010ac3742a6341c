"""Main-face tracks: one face per frame, followed through the video by box overlap; and
detection every N frames with the faces carried between (:class:`KeyframeDetector`).

Expression datasets keep the largest face of each frame (Ayral, 2.2.3.1). Choosing per frame lets a
passer-by who is briefly larger take over single frames; a track instead starts from the largest
confident face of the video and follows it forwards and backwards, frame to frame, by IoU with the
last matched box. When the face is missed in a frame the last box is kept for matching, so a face
that reappears near where it was is picked up again. After ``max_gap`` missed frames the track is
re-acquired from the largest confident face of the frame.

A full detection of every frame is most of a face pipeline's cost. :class:`KeyframeDetector`
runs it on every N-th frame only and carries the faces it found from frame to frame with a cheaper
re-detection around each face's last box, moved by the pyramidal Lucas-Kanade flow of its
landmarks: the full cascade restricted to a region around it
(:meth:`vidfer.faces.mtcnn.MTCNN.detect_near`, the full detection's own boxes and landmarks there)
where that region is small enough for it to be cheap, O-Net alone on the box elsewhere
(:meth:`vidfer.faces.mtcnn.MTCNN.refine`, the same kind of boxes and landmarks, about 1 frame pixel
from the full detection's: on a large face that is little). A fresh full detection runs when a face
is lost (its score falls under O-Net's threshold) or moves fast (its refined box overlaps the
predicted one by less than ``min_iou``), and a face that a keyframe finds but the frames before
it did not carry is followed backwards to where it appeared, so that faces are found in the same
frames as by a full detection of every frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from vidfer.config.faces import MissingPolicy
from vidfer.faces.regions import search_regions
from vidfer.faces.types import FrameFaces

_LK_WINDOW = (15, 15)  # Lucas-Kanade window, pixels
_LK_LEVELS = 2  # pyramid levels above the frame (motion up to about 4 x 15 pixels)

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


@runtime_checkable
class Refiner(Protocol):
    """A detector that can also re-detect faces inside given boxes (e.g. MTCNN's O-Net alone) and
    detect only around them (MTCNN's full cascade on those regions)."""

    def detect(self, frames: np.ndarray) -> list[FrameFaces]:
        """Detect faces in ``(T, H, W, 3)`` uint8 RGB frames, one result per frame."""
        ...

    def refine(self, frames: np.ndarray, boxes: Sequence[np.ndarray]) -> list[FrameFaces]:
        """Faces found inside ``(n_t, 4)`` boxes of each of ``(T, H, W, 3)`` frames."""
        ...

    def detect_near(
        self,
        frames: np.ndarray,
        boxes: Sequence[np.ndarray],
        *,
        margin: float,
        smallest: float,
    ) -> list[FrameFaces]:
        """Faces :meth:`detect` would find centred inside ``(n_t, 4)`` boxes of each of
        ``(T, H, W, 3)`` frames, detecting only in regions ``margin`` box sides around them and
        only faces from ``smallest`` times the box side up."""
        ...


def _uncovered(faces: FrameFaces, known: np.ndarray, min_iou: float) -> np.ndarray:
    """``(m,)`` indices of ``faces`` whose box overlaps none of ``known`` ``(n, 4)`` by
    ``min_iou``."""
    if not len(known):
        return np.arange(len(faces))
    return np.array(
        [j for j, box in enumerate(faces.boxes) if iou(box, known).max() < min_iou],
        dtype=np.int64,
    )


def _subset(faces: FrameFaces, index: np.ndarray) -> FrameFaces:
    """The faces at ``index`` ``(m,)``."""
    landmarks = None if faces.landmarks is None else faces.landmarks[index]
    return FrameFaces(faces.boxes[index], faces.scores[index], landmarks)


def _merged(a: FrameFaces, b: FrameFaces) -> FrameFaces:
    """The faces of ``a`` and ``b`` together, best score first."""
    scores = np.concatenate([a.scores, b.scores])
    order = np.argsort(-scores, kind="stable")
    landmarks = None
    if a.landmarks is not None and b.landmarks is not None:
        landmarks = np.concatenate([a.landmarks, b.landmarks])[order]
    return FrameFaces(np.concatenate([a.boxes, b.boxes])[order], scores[order], landmarks)


def _flow(previous: np.ndarray, current: np.ndarray, faces: FrameFaces) -> np.ndarray:
    """Where the faces of gray frame ``previous`` moved in gray frame ``current``: each face's
    box ``(n, 4)`` shifted by the median pyramidal Lucas-Kanade motion of its landmarks (of its
    box centre without landmarks; no shift where no point was followed)."""
    boxes = faces.boxes
    if faces.landmarks is not None and not np.isnan(faces.landmarks).any():
        points = faces.landmarks  # (n, k, 2)
    else:
        points = ((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None, :]  # (n, 2) -> (n, 1, 2)
    n, k, _ = points.shape
    start = np.ascontiguousarray(points.reshape(-1, 1, 2), dtype=np.float32)  # (n * k, 1, 2)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(
        previous, current, start, start.copy(), winSize=_LK_WINDOW, maxLevel=_LK_LEVELS
    )
    motion = (np.asarray(moved) - start).reshape(n, k, 2)  # (n * k, 1, 2) -> (n, k, 2)
    followed = np.asarray(status).reshape(n, k).astype(bool)
    shifts = np.zeros((n, 2), np.float32)
    for j in range(n):
        if followed[j].any():
            shifts[j] = np.median(motion[j][followed[j]], axis=0)
    return boxes + np.tile(shifts, 2)  # (n, 2) -> (n, 4) as dx, dy, dx, dy


class KeyframeDetector:
    """Detect less, track more: full detection every ``every`` frames, faces carried between.

    One instance reads one video, in as many :meth:`detect` calls (chunks of frames, in order)
    as its reader likes; it keeps the last frame read and its faces. Every ``every``-th frame of
    the video (the first included) is detected in full (all keyframes of a chunk in one batch).
    In every other frame, each face of the frame before is looked for around its box moved by
    the optical flow of its landmarks (:func:`_flow`): by the detector's full detection restricted
    to the region ``margin`` box sides around it, for faces from ``smallest`` box sides up
    (MTCNN's ``detect_near``: what a full detection of the frame finds there), when the frame's
    regions cover at most ``near_area`` of it; by its re-detection inside the box alone otherwise
    (MTCNN's O-Net: the same kind of box and landmarks, and a score). A face
    lost on the way (its score under the detector's threshold), or moved so fast that its new box
    overlaps the predicted one by less than ``min_iou``, triggers a full detection of that frame.
    A face that a full detection finds and the frame before did not hold is followed backwards,
    inside the chunk and down to the previous full detection, until it is lost. A frame after a
    frame without faces has none until the next full detection, which then fills it backwards if
    a face had appeared.

    Args:
        detector: The detector and its box re-detection.
        every: Frames per full detection.
        min_iou: Overlap of a re-detected face's box with its predicted box below which it has
            moved too fast to follow; below it a full detection's face counts as new.
        near_area: Largest fraction of a frame that its faces' regions may cover for them to be
            re-detected by the full cascade there (it costs about that fraction of a full
            detection, O-Net alone much less); 0: always O-Net alone.
        margin: A region around a carried face, in box sides on each side.
        smallest: Smallest face looked for in a region, in box sides (the pyramid levels for
            smaller ones, the costliest, are skipped; at 0.5 the carried faces came out as the
            full detection's on the sample videos).
    """

    def __init__(
        self,
        detector: Refiner,
        every: int,
        *,
        min_iou: float = 0.5,
        near_area: float = 0.25,
        margin: float = 1.0,
        smallest: float = 0.5,
    ) -> None:
        if every < 1 or not 0 < min_iou <= 1 or near_area < 0 or margin < 0 or smallest < 0:
            raise ValueError(
                "KeyframeDetector needs every >= 1, 0 < min_iou <= 1 and near_area, margin, "
                f"smallest >= 0; got {every}, {min_iou}, {near_area}, {margin}, {smallest}"
            )
        self.detector = detector
        self.every = every
        self.min_iou = min_iou
        self.near_area = near_area
        self.margin = margin
        self.smallest = smallest
        self.full_detections = 0  # frames detected in full so far (for benchmarks and logs)
        self._seen = 0  # frames of the video read so far
        self._last = FrameFaces.empty(None)  # faces of the last frame read
        self._last_gray: np.ndarray | None = None  # the last frame read, gray (H, W)

    def detect(self, frames: np.ndarray) -> list[FrameFaces]:
        """Faces of the next ``(T, H, W, 3)`` uint8 RGB frames of the video, one per frame.

        The re-detection runs batched over the chunk: the faces of each keyframe are moved from
        frame to frame by optical flow up to the next keyframe, and every frame between is
        re-detected in one call. A frame whose re-detection does not continue the faces actually
        kept for the frame before (after a full detection in between) is re-detected on its own.
        """
        grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]  # (H, W) each
        keys = [i for i in range(len(frames)) if (self._seen + i) % self.every == 0]
        keyed = dict(zip(keys, self._full(frames[keys]), strict=True)) if keys else {}
        guesses = self._guesses(frames, grays, keyed)
        out: list[FrameFaces] = []
        last_full = -1  # chunk position of the last full detection
        chained = True  # whether the frame before was a keyframe or kept its guess
        for i in range(len(frames)):
            faces = keyed.get(i)
            if faces is None:
                faces = guesses.get(i) if chained else None
                if faces is None or len(faces) != len(self._last):
                    faces = self._carry(frames[i : i + 1], grays[i])
            if faces is None:  # a face was lost or moved fast
                faces = keyed[i] = self._full(frames[i : i + 1])[0]
            if i in keyed:
                self._backfill(frames, grays, out, faces, i, last_full)
                last_full = i
            # Guesses follow the keyframes' faces: after a frame detected on its own, carry.
            chained = i in keys or faces is guesses.get(i)
            out.append(faces)
            self._last, self._last_gray = faces, grays[i]
        self._seen += len(frames)
        return out

    def _guesses(
        self, frames: np.ndarray, grays: list[np.ndarray], keyed: dict[int, FrameFaces]
    ) -> dict[int, FrameFaces]:
        """Faces re-detected, in one batch, in the chunk's non-key frames, each inside the box
        of its keyframe's faces (or the last chunk's last faces) moved there by optical flow."""
        predicted: dict[int, np.ndarray] = {}
        faces, gray = self._last, self._last_gray
        for i, current in enumerate(grays):
            if i in keyed:
                faces = keyed[i]
            elif len(faces) and gray is not None:
                boxes = _flow(gray, current, faces)
                predicted[i] = boxes
                faces = FrameFaces(boxes, faces.scores, _moved(faces, boxes))
            gray = current
        busy = sorted(predicted)
        if not busy:
            return {}
        found = self._redetect(frames[busy], [predicted[i] for i in busy])
        return {
            i: faces
            for i, faces in zip(busy, found, strict=True)
            if self._continues(faces, predicted[i])
        }

    def _redetect(self, frames: np.ndarray, boxes: Sequence[np.ndarray]) -> list[FrameFaces]:
        """The faces of ``boxes`` ``(n_t, 4)`` found again in each of ``frames`` ``(T, H, W, 3)``:
        by the detector's full cascade around them where their regions cover at most
        :attr:`near_area` of the frame, by its re-detection inside them elsewhere."""
        height, width = frames.shape[1:3]
        regions = [
            search_regions(np.asarray(b, np.float64), self.margin, height, width) for b in boxes
        ]
        covered = np.array([np.prod(r[:, 2:4] - r[:, 0:2], axis=1).sum() for r in regions])  # (T,)
        near = covered <= self.near_area * height * width  # (T,)
        out: dict[int, FrameFaces] = {}
        for index, redetect in (
            (np.flatnonzero(near), self._near),
            (np.flatnonzero(~near), self.detector.refine),
        ):
            chosen = index.tolist()
            if chosen:
                found = redetect(frames[chosen], [boxes[i] for i in chosen])
                out.update(zip(chosen, found, strict=True))
        return [out[i] for i in range(len(boxes))]

    def _near(self, frames: np.ndarray, boxes: Sequence[np.ndarray]) -> list[FrameFaces]:
        """The detector's full cascade around ``boxes`` ``(n_t, 4)`` of each of ``frames``."""
        return self.detector.detect_near(frames, boxes, margin=self.margin, smallest=self.smallest)

    def _continues(self, faces: FrameFaces, boxes: np.ndarray) -> bool:
        """Whether ``faces`` are the faces of ``boxes`` ``(n, 4)`` again: as many, and each new
        box overlapping an old one by ``min_iou``."""
        return len(faces) == len(boxes) and not len(_uncovered(faces, boxes, self.min_iou))

    def _full(self, frames: np.ndarray) -> list[FrameFaces]:
        self.full_detections += len(frames)
        return self.detector.detect(frames)

    def _carry(self, frame: np.ndarray, gray: np.ndarray) -> FrameFaces | None:
        """The last frame's faces re-detected in ``frame`` ``(1, H, W, 3)`` (gray ``(H, W)``),
        or None when one was lost or moved fast; no faces to carry, no faces."""
        if not len(self._last) or self._last_gray is None:
            return _subset(self._last, np.zeros(0, np.int64))
        boxes = _flow(self._last_gray, gray, self._last)
        faces = self._redetect(frame, [boxes])[0]
        return faces if self._continues(faces, boxes) else None

    def _backfill(
        self,
        frames: np.ndarray,
        grays: list[np.ndarray],
        out: list[FrameFaces],
        faces: FrameFaces,
        position: int,
        stop: int,
    ) -> None:
        """Follow the faces that a full detection found at chunk ``position`` and the frame
        before did not hold backwards through ``out``, down to just after chunk ``stop``."""
        if position == 0:
            return
        new = _subset(faces, _uncovered(faces, out[position - 1].boxes, self.min_iou))
        for j in range(position - 1, stop, -1):
            if not len(new):
                return
            boxes = _flow(grays[j + 1], grays[j], new)
            found = self._redetect(frames[j : j + 1], [boxes])[0]
            # Keep the faces that moved as predicted and that the frame does not hold yet.
            found = _subset(
                found, np.setdiff1d(np.arange(len(found)), _uncovered(found, boxes, self.min_iou))
            )
            new = _subset(found, _uncovered(found, out[j].boxes, self.min_iou))
            if len(new):
                out[j] = _merged(out[j], new)


def _moved(faces: FrameFaces, boxes: np.ndarray) -> np.ndarray | None:
    """The landmarks of ``faces`` shifted as their boxes moved to ``boxes`` ``(n, 4)``."""
    if faces.landmarks is None:
        return None
    shift = (boxes - faces.boxes)[:, None, :2]  # (n, 4) -> (n, 1, 2): dx, dy
    return faces.landmarks + shift
