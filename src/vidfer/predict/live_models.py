"""The models of ``vidfer live``: a predictor's model on the newest frames of a live source.

The main face is found with the same detector, tracker and alignment as ``vidfer predict``
(keyframe detection included: :func:`~vidfer.faces.pipeline.video_detector`), tracked over the
last window of detections:

- :class:`FerModel`, the default FER model: each frame's face, its probabilities smoothed over
  the last ``FER_SMOOTHING`` scored frames; one result per frame read;
- :class:`RunModel`, a trained clip run (3D model): the last ``eval.clip_len`` preprocessed
  frames, scored by the run's own scorer; one result per scoring step, for its newest frame.
"""

from __future__ import annotations

import abc
import collections
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vidfer.config import PrepareConfig
from vidfer.data.preprocess import finish_frames
from vidfer.errors import ConfigError
from vidfer.faces.pipeline import (
    FaceDetector,
    crop_faces,
    load_detector,
    track_faces,
    video_detector,
)
from vidfer.faces.tracks import MISSING
from vidfer.faces.types import FrameFaces
from vidfer.predict.fer import FER_SMOOTHING, FerPredictor
from vidfer.predict.predictor import Predictor

if TYPE_CHECKING:
    from vidfer.predict.run_predictor import RunPredictor

WindowResults = list[tuple[int, list[float] | None, np.ndarray | None]]
"""``(position among the new frames, box, probabilities (K,) or None)`` per result."""


class LiveModel(abc.ABC):
    """A predictor's model on a live window of frames.

    Attributes:
        window: Frames of context: the reader's deque and the detections tracked.
        classes: The class names, in the model's order.
        detector: The face detector of the stream (None without a face pipeline): the one
            ``vidfer predict`` reads a video with (:func:`~vidfer.faces.pipeline.video_detector`),
            so with ``faces.detect_every`` above 1 a full detection on every N-th frame read and
            the faces carried between by optical flow and re-detection.
    """

    window: int
    classes: list[str]

    def __init__(self, prep: PrepareConfig) -> None:
        self.prep = prep
        self.faces = prep.face_config()
        self.detections: collections.deque[FrameFaces] = collections.deque(maxlen=self.window)
        self.detector: FaceDetector | None = None
        if self.faces is not None:
            load_detector(self.faces)  # weights read (on faces.device), run once
            # The stream is one video read in order, in the chunks the scorer takes.
            self.detector = video_detector(self.faces)

    def _faces(self, rgb: np.ndarray) -> tuple[np.ndarray, list[list[float] | None]]:
        """Preprocessed frames of ``rgb`` ``(n, H, W, 3)`` with the tracked face (all frames
        without a face pipeline), and each frame's box (None without a face): ``(m, S, S, 3)``
        and ``n`` boxes."""
        if self.faces is None:
            height, width = rgb.shape[1:3]
            scale = self.prep.size / min(height, width)
            size = (round(width * scale), round(height * scale))
            resized = np.stack(
                [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in rgb]
            )
            return finish_frames(resized, self.prep), [None] * len(rgb)
        assert self.detector is not None  # built with the face pipeline
        self.detections.extend(self.detector.detect(rgb))
        track, records = track_faces(list(self.detections), self.faces)  # the recent window
        positions = np.arange(len(track) - len(rgb), len(track))  # (n,) the new frames
        has_face = np.array([track.status[p] != MISSING for p in positions])
        boxes = [records[p]["box"] if has_face[i] else None for i, p in enumerate(positions)]
        if not has_face.any():
            return np.zeros((0, self.faces.size, self.faces.size, 3), np.uint8), boxes
        crops, _ = crop_faces(rgb[has_face], positions[has_face], track, self.faces)
        return finish_frames(crops, self.prep), boxes

    @abc.abstractmethod
    def score(self, rgb: np.ndarray) -> WindowResults:
        """``(position among the new frames, box, probabilities (K,) or None)`` per result."""


class FerModel(LiveModel):
    """The default FER model: each face scored, smoothed over the last ``FER_SMOOTHING``."""

    def __init__(self, predictor: FerPredictor) -> None:
        self.window, self.classes, self.predictor = FER_SMOOTHING, predictor.classes, predictor
        super().__init__(predictor.prep)
        self.recent: collections.deque[np.ndarray] = collections.deque(maxlen=FER_SMOOTHING)
        predictor.probabilities(np.zeros((1, 64, 64), np.uint8))  # warm up before the first frame

    def score(self, rgb: np.ndarray) -> WindowResults:
        faces, boxes = self._faces(rgb)
        probs = iter(self.predictor.probabilities(faces[..., 0]) if len(faces) else [])
        results: WindowResults = []
        for i, box in enumerate(boxes):
            if box is None:
                results.append((i, None, None))
                continue
            self.recent.append(next(probs))
            results.append((i, box, np.mean(self.recent, axis=0)))  # smoothed over the window
        return results


class RunModel(LiveModel):
    """A trained clip run: the last ``eval.clip_len`` frames scored by the run's scorer."""

    def __init__(self, predictor: RunPredictor, source: str) -> None:
        if predictor.config.kind != "clip":
            raise ConfigError(
                f"{predictor.run.folder}: vidfer live takes clip runs (3D models) or no --run"
            )
        self.window, self.classes = predictor.settings.clip_len, predictor.classes
        super().__init__(predictor.prep)
        self.scorer = predictor.scorer(Path(source))
        self.clip: collections.deque[np.ndarray] = collections.deque(maxlen=self.window)

    def score(self, rgb: np.ndarray) -> WindowResults:
        frames, boxes = self._faces(rgb)
        self.clip.extend(frames)
        if len(self.clip) < self.window or not len(frames):
            return []
        scored = self.scorer(iter([np.stack(self.clip)]))  # one piece (L, S, S, 3)
        return [(len(rgb) - 1, boxes[-1], scored.video)]


def live_model(predictor: Predictor, source: str) -> LiveModel:
    """The live model of a predictor (:func:`~vidfer.predict.video.make_predictor`'s).

    Raises:
        ConfigError: if the predictor's run is not a clip run.
    """
    if isinstance(predictor, FerPredictor):
        return FerModel(predictor)
    from vidfer.predict.run_predictor import RunPredictor  # a run's pipelines only for a run

    assert isinstance(predictor, RunPredictor)
    return RunModel(predictor, source)
