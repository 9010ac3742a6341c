"""The result type every face detector returns for one frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameFaces:
    """The faces found in one frame, best score first.

    Coordinates are in pixels of the input frame, x to the right and y down.

    Attributes:
        boxes: ``(n, 4)`` float32 corners ``x1, y1, x2, y2``.
        scores: ``(n,)`` float32 face probabilities (1.0 for detectors without one, e.g. Haar).
        landmarks: ``(n, k, 2)`` float32 ``(x, y)`` points, or None when the detector gives none.
            MTCNN gives ``k = 5``: left eye, right eye, nose, left mouth corner, right mouth
            corner, where "left" is the image's left (the person's right). The Haar detector gives
            ``k = 2`` eye centres in the same order, NaN for a face whose eyes were not found.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.boxes.shape != (n, 4) or self.scores.shape != (n,):
            raise ValueError(
                f"FrameFaces needs boxes (n, 4) and scores (n,); got {self.boxes.shape} "
                f"and {self.scores.shape}"
            )
        if self.landmarks is not None and (
            self.landmarks.ndim != 3 or self.landmarks.shape[0] != n or self.landmarks.shape[2] != 2
        ):
            raise ValueError(f"FrameFaces landmarks must be (n, k, 2); got {self.landmarks.shape}")

    @classmethod
    def empty(cls, num_landmarks: int | None = None) -> FrameFaces:
        """A frame without faces (``num_landmarks`` None: a detector without landmarks)."""
        landmarks = None if num_landmarks is None else np.zeros((0, num_landmarks, 2), np.float32)
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), landmarks)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def areas(self) -> np.ndarray:
        """``(n,)`` box areas in square pixels."""
        wh = np.clip(self.boxes[:, 2:4] - self.boxes[:, 0:2], 0, None)  # (n, 2) width, height
        return wh[:, 0] * wh[:, 1]
