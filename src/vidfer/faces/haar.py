"""OpenCV Haar-cascade face detector (Viola-Jones), with eye centres from the eye cascade.

A fast, dependency-light alternative to MTCNN. It gives no probability (every score is 1.0) and no
5-point landmarks: with ``eyes=True`` each face gets 2 landmarks, the centres of the two largest
eye detections inside the upper half of its box, or NaN when two eyes are not found.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidfer.errors import AssetError
from vidfer.faces.types import FrameFaces

_EYE_SEARCH_WIDTH = 120  # face width, in pixels, at which the eye cascade is run


def haar_cascade_path(filename: str) -> Path:
    """Path of a cascade shipped with opencv-python (``cv2.data.haarcascades``).

    Raises:
        AssetError: if this OpenCV build does not ship the file.
    """
    # cv2.data is a plain module of opencv-python, missing from OpenCV's type stubs.
    path = Path(cv2.data.haarcascades) / filename  # type: ignore[attr-defined]
    if not path.is_file():
        raise AssetError(
            f"OpenCV cascade {filename} not found in {path.parent}; reinstall "
            "opencv-python-headless (the cascades ship with it)"
        )
    return path


def _load_cascade(filename: str) -> cv2.CascadeClassifier:
    path = haar_cascade_path(filename)
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise AssetError(f"OpenCV could not load the cascade {path}; the file may be corrupt")
    return cascade


class HaarDetector:
    """Frontal-face Haar cascade over video frames.

    Args:
        min_face_size: Smallest face side in pixels.
        scale_factor: Pyramid step of ``detectMultiScale``.
        min_neighbors: Overlapping raw detections needed to keep a face (higher: fewer false
            positives).
        eyes: Also locate the two eye centres in each face.
    """

    def __init__(
        self,
        *,
        min_face_size: int = 20,
        scale_factor: float = 1.1,
        min_neighbors: int = 4,
        eyes: bool = True,
    ) -> None:
        self.min_face_size = min_face_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._faces = _load_cascade("haarcascade_frontalface_default.xml")
        self._eyes = _load_cascade("haarcascade_eye.xml") if eyes else None

    def detect(self, frames: np.ndarray) -> list[FrameFaces]:
        """Detect faces in every frame.

        Args:
            frames: ``(T, H, W, 3)`` uint8 RGB.

        Returns:
            One :class:`FrameFaces` per frame, largest face first; landmarks ``(n, 2, 2)`` eye
            centres (image-left eye first) when ``eyes`` is on, else None.
        """
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {frames.shape}"
            )
        return [self._detect_frame(frame) for frame in frames]

    def _detect_frame(self, frame: np.ndarray) -> FrameFaces:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        size = (self.min_face_size, self.min_face_size)
        found = self._faces.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=size
        )
        num_landmarks = None if self._eyes is None else 2
        if len(found) == 0:
            return FrameFaces.empty(num_landmarks)
        rects = np.asarray(found, dtype=np.float32).reshape(-1, 4)  # (n, 4) as x, y, w, h
        rects = rects[np.argsort(-rects[:, 2] * rects[:, 3], kind="stable")]
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        scores = np.ones(len(boxes), np.float32)
        landmarks = None
        if self._eyes is not None:
            landmarks = np.stack([self._eye_centres(gray, box) for box in boxes])  # (n, 2, 2)
        return FrameFaces(boxes, scores, landmarks)

    def _eye_centres(self, gray: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(2, 2)`` centres of the two largest eyes in the box's upper part, else NaN."""
        assert self._eyes is not None
        height, width = gray.shape
        x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
        x2, y2 = min(int(box[2]), width), min(int(box[3]), height)
        # Eyes sit in the upper 60% of a frontal face box; searching there avoids nostrils.
        upper = gray[y1 : y1 + (y2 - y1) * 6 // 10, x1:x2]
        if upper.size == 0:
            return np.full((2, 2), np.nan, np.float32)
        # The eye cascade's 20x20 window misses the ~10-pixel eyes of small faces: upsample first.
        zoom = max(1.0, _EYE_SEARCH_WIDTH / upper.shape[1])
        upper = cv2.resize(upper, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
        min_eye = max(upper.shape[1] // 8, 10)
        found = self._eyes.detectMultiScale(
            upper, scaleFactor=1.1, minNeighbors=3, minSize=(min_eye, min_eye)
        )
        if len(found) < 2:
            return np.full((2, 2), np.nan, np.float32)
        eyes = np.asarray(found, dtype=np.float32).reshape(-1, 4)  # (m, 4) as x, y, w, h
        two = eyes[np.argsort(-eyes[:, 2] * eyes[:, 3], kind="stable")[:2]]
        centres = (two[:, :2] + two[:, 2:] / 2) / zoom + np.array([x1, y1], np.float32)  # (2, 2)
        return centres[np.argsort(centres[:, 0])]
