"""Detect less, track more: full face detection every N frames, the faces carried between.

A full detection of every frame is most of a face pipeline's cost. :class:`KeyframeDetector`
runs it on every N-th frame only and carries the faces it found from frame to frame with a cheaper
re-detection around each face's last box, moved by the pyramidal Lucas-Kanade flow of its
landmarks: the full cascade restricted to a region around it
(:meth:`vidfer.faces.mtcnn.MTCNN.detect_near`, the full detection's own boxes and landmarks there)
where that region is small enough for it to be cheap, O-Net alone on the box elsewhere
(:meth:`vidfer.faces.mtcnn.MTCNN.refine`, the same kind of boxes and landmarks, about 1 frame pixel
from the full detection's: on a large face that is little). A fresh full detection runs when a face
moves fast (its re-detected box overlaps the predicted one by less than ``min_iou``) or is lost by
O-Net alone (its score falls under O-Net's threshold); a face the full cascade around it no longer
finds is gone, as it is from a full detection. A face that a keyframe finds but the frames before
it did not carry is followed backwards to where it appeared, so that faces are found in the same
frames as by a full detection of every frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from vidfer.faces.regions import search_regions
from vidfer.faces.tracks import iou
from vidfer.faces.types import FrameFaces

_LK_WINDOW = (15, 15)  # Lucas-Kanade window, pixels
_LK_LEVELS = 2  # pyramid levels above the frame (motion up to about 4 x 15 pixels)
# Largest forward-backward error, in pixels, of a point followed by Lucas-Kanade: a point tracked
# to the next frame and back that lands further from where it started was lost (Kalal et al.,
# 2010). On bikes' fast-moving face, the flow of 3 of 5 landmarks jumped 54 pixels too far.
_FB_MAX = 2.0
# Frames in a row that following a face backwards looks past where it is not found: the full
# detection misses a face in a single frame now and then (bikes' cyclist at frame 79 of 76-82).
_GAP = 1
_BACKFILL_BATCH = 8  # most frames re-detected at once when following a face backwards


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
        largest: float,
    ) -> list[FrameFaces]:
        """Faces :meth:`detect` would find centred inside ``(n_t, 4)`` boxes of each of
        ``(T, H, W, 3)`` frames, detecting only in regions ``margin`` box sides around them and
        only with windows from ``smallest`` to ``largest`` times the box side."""
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
    box centre without landmarks) that were followed there and back to within ``_FB_MAX``
    pixels; no shift where no point was."""
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
    back, returned, _ = cv2.calcOpticalFlowPyrLK(
        current, previous, moved, start.copy(), winSize=_LK_WINDOW, maxLevel=_LK_LEVELS
    )
    error = np.linalg.norm((np.asarray(back) - start).reshape(n, k, 2), axis=2)  # (n, k)
    motion = (np.asarray(moved) - start).reshape(n, k, 2)  # (n * k, 1, 2) -> (n, k, 2)
    followed = (np.asarray(status) & np.asarray(returned)).reshape(n, k).astype(bool)
    followed &= error <= _FB_MAX
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
    the optical flow of its landmarks (:func:`_flow`): by the detector's full detection
    restricted to the region ``margin`` box sides around it, with windows from ``smallest`` to
    ``largest`` box sides (MTCNN's ``detect_near``: what a full detection of the frame finds
    there), when the frame's regions cover at most ``near_area`` of it; by its re-detection inside
    the box alone otherwise (MTCNN's O-Net: the same kind of box and landmarks, and a score). A
    face moved so fast that its new box overlaps the predicted one by less than ``min_iou``, or
    lost by the re-detection inside its box (its score under the detector's threshold), triggers
    a full detection of that frame; a face lost by the full cascade around it is gone, and the
    faces kept are carried on. A face that a full detection finds and the frame before did not
    hold is followed backwards, inside the chunk and down to the previous full detection, until
    it is lost (looking past one frame where it is not found: the full detection misses a face
    in one frame now and then). A frame after a frame without faces has none until the next
    full detection, which then fills it backwards if a face had appeared.

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
        largest: Largest detector window looked at in a region, in box sides (the coarser
            levels are skipped: at 2 the carried faces still came out as the full detection's on
            the sample videos, at 1.5 no longer).
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
        largest: float = 2.0,
    ) -> None:
        if (
            every < 1
            or not 0 < min_iou <= 1
            or near_area < 0
            or margin < 0
            or not 0 <= smallest < largest
        ):
            raise ValueError(
                "KeyframeDetector needs every >= 1, 0 < min_iou <= 1, near_area, margin >= 0 and "
                f"0 <= smallest < largest; got {every}, {min_iou}, {near_area}, {margin}, "
                f"{smallest}, {largest}"
            )
        self.detector = detector
        self.every = every
        self.min_iou = min_iou
        self.near_area = near_area
        self.margin = margin
        self.smallest = smallest
        self.largest = largest
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
        """Faces re-detected, batched, in the chunk's non-key frames, each inside the box of its
        keyframe's faces (or the last chunk's last faces) moved there by optical flow.

        The frames run in two batches: the first half of every run of frames after a keyframe,
        then the second half of the runs whose faces all came back in the first. After a face
        is lost, the frames up to the next keyframe are carried from what was kept instead (see
        :meth:`detect`), so re-detecting their guesses would be wasted.
        """
        predicted: dict[int, np.ndarray] = {}
        start: dict[int, int] = {}  # each guessed frame's keyframe (-1: the last chunk)
        faces, gray, key = self._last, self._last_gray, -1
        for i, current in enumerate(grays):
            if i in keyed:
                faces, key = keyed[i], i
            elif len(faces) and gray is not None:
                boxes = _flow(gray, current, faces)
                predicted[i], start[i] = boxes, key
                faces = FrameFaces(boxes, faces.scores, _moved(faces, boxes))
            gray = current
        out: dict[int, FrameFaces] = {}
        lost: set[int] = set()  # keyframes whose run lost a face
        for first in (True, False):
            busy = [
                i
                for i in sorted(predicted)
                if ((self._seen + i) % self.every <= self.every // 2) == first
                and start[i] not in lost
            ]
            if not busy:
                continue
            found = self._redetect(frames[busy], [predicted[i] for i in busy])
            for i, faces in zip(busy, found, strict=True):
                if self._continues(faces, predicted[i]):
                    out[i] = faces
                else:
                    lost.add(start[i])
        return out

    def _redetect(self, frames: np.ndarray, boxes: Sequence[np.ndarray]) -> list[FrameFaces]:
        """The faces of ``boxes`` ``(n_t, 4)`` found again in each of ``frames`` ``(T, H, W, 3)``:
        by the detector's full cascade around them where their regions cover at most
        :attr:`near_area` of the frame, by its re-detection inside them elsewhere."""
        near = self._nearby(boxes, *frames.shape[1:3])  # (T,)
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

    def _nearby(self, boxes: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
        """``(T,)`` whether each frame's ``(n_t, 4)`` boxes are re-detected by the full cascade
        around them: their regions cover at most :attr:`near_area` of a ``height x width`` frame."""
        regions = [
            search_regions(np.asarray(b, np.float64), self.margin, height, width) for b in boxes
        ]
        covered = np.array([np.prod(r[:, 2:4] - r[:, 0:2], axis=1).sum() for r in regions])  # (T,)
        return covered <= self.near_area * height * width

    def _near(self, frames: np.ndarray, boxes: Sequence[np.ndarray]) -> list[FrameFaces]:
        """The detector's full cascade around ``boxes`` ``(n_t, 4)`` of each of ``frames``."""
        return self.detector.detect_near(
            frames, boxes, margin=self.margin, smallest=self.smallest, largest=self.largest
        )

    def _continues(self, faces: FrameFaces, boxes: np.ndarray) -> bool:
        """Whether ``faces`` are the faces of ``boxes`` ``(n, 4)`` again: as many, and each new
        box overlapping an old one by ``min_iou``."""
        return len(faces) == len(boxes) and not len(_uncovered(faces, boxes, self.min_iou))

    def _full(self, frames: np.ndarray) -> list[FrameFaces]:
        self.full_detections += len(frames)
        return self.detector.detect(frames)

    def _carry(self, frame: np.ndarray, gray: np.ndarray) -> FrameFaces | None:
        """The last frame's faces re-detected in ``frame`` ``(1, H, W, 3)`` (gray ``(H, W)``),
        or None when one moved fast, or was lost by the re-detection inside its box alone; no
        faces to carry, no faces.

        Faces lost by the full cascade around their boxes are gone: it found there what a full
        detection of the frame finds, so the faces it kept are carried on without one. A face
        appearing elsewhere before the next keyframe is found by that keyframe's full detection
        and followed backwards (:meth:`_backfill`).
        """
        if not len(self._last) or self._last_gray is None:
            return _subset(self._last, np.zeros(0, np.int64))
        boxes = _flow(self._last_gray, gray, self._last)
        faces = self._redetect(frame, [boxes])[0]
        if self._continues(faces, boxes):
            return faces
        kept = len(faces) < len(boxes) and not len(_uncovered(faces, boxes, self.min_iou))
        return faces if kept and self._nearby([boxes], *gray.shape)[0] else None

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
        before did not hold backwards through ``out``, down to just after chunk ``stop``.

        The frames are re-detected a few at a time (2, then twice as many each time, up to
        ``_BACKFILL_BATCH``), each inside the faces' boxes moved there by optical flow from
        the frame after, as :meth:`_guesses` does forwards; a frame whose faces do not all come
        back where guessed ends the batch, and the next one is guessed from the faces found.
        """
        if position == 0:
            return
        new = _subset(faces, _uncovered(faces, out[position - 1].boxes, self.min_iou))
        misses = 0  # frames in a row where none of them was found
        last, count = position - 1, 2  # the next frame to fill, and how many at once
        while last > stop and len(new):
            span = list(range(last, max(stop, last - count), -1))  # backwards
            guesses, guess = [], new
            for j in span:
                boxes = _flow(grays[j + 1], grays[j], guess)
                guesses.append(boxes)
                guess = FrameFaces(boxes, guess.scores, _moved(guess, boxes))
            found_all = self._redetect(frames[span], guesses)
            count = min(2 * count, _BACKFILL_BATCH)
            for j, boxes, found in zip(span, guesses, found_all, strict=True):
                last = j - 1
                # Keep the faces that moved as predicted.
                moved = np.setdiff1d(np.arange(len(found)), _uncovered(found, boxes, self.min_iou))
                found = _subset(found, moved)
                if not len(found) and misses < _GAP:  # the detector's miss, or where they appeared
                    misses += 1
                    new = FrameFaces(boxes, new.scores, _moved(new, boxes))
                    continue
                misses = 0
                # Follow on the faces that the frame does not hold yet.
                new = _subset(found, _uncovered(found, out[j].boxes, self.min_iou))
                if len(new):
                    out[j] = _merged(out[j], new)
                if len(new) != len(boxes):  # not all where guessed: guess again from these
                    break


def _moved(faces: FrameFaces, boxes: np.ndarray) -> np.ndarray | None:
    """The landmarks of ``faces`` shifted as their boxes moved to ``boxes`` ``(n, 4)``."""
    if faces.landmarks is None:
        return None
    shift = (boxes - faces.boxes)[:, None, :2]  # (n, 4) -> (n, 1, 2): dx, dy
    return faces.landmarks + shift
