"""The default model of ``vidfer predict``: the pretrained FER2013 mini-Xception on faces.

The aligned face of every frame is scored (7 emotions), the per-frame probabilities are smoothed
over time and averaged into the video label.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d

from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.data.stream import VideoStream
from vidfer.device import resolve_device
from vidfer.io.frame_folder import FRAME_FOLDER_FPS
from vidfer.models.mini_xception import (
    FER2013_CLASSES,
    MiniXception,
    load_mini_xception,
    preprocess,
)
from vidfer.predict.outputs import Prediction, finished_record, place_timeline, write_outputs
from vidfer.predict.predictor import Predictor

if TYPE_CHECKING:
    from vidfer.export import Runner

# The default model's face pipeline: mini-Xception reads 64x64 gray faces.
FER_PREPARE = PrepareConfig(faces={"detector": "mtcnn", "size": 64, "grayscale": True})
FER_SMOOTHING = 5  # frames in the moving average of per-frame probabilities
FER_PIECE_FRAMES = 256  # frames decoded, aligned and scored at a time by the default model
FER_BATCH = 64  # faces per forward pass: 3x faster than 256 on the CPU (benchmarks/README.md)


class FerPredictor(Predictor):
    """The pretrained FER2013 mini-Xception on the aligned face of every frame.

    Args:
        piece_frames: Frames decoded, aligned and scored at a time.
        exported: An exported model's runner to score with (on the CPU) instead of PyTorch.
        folder_fps: The frame rate of frame folders.
        device: Where the face detector and the model run (``auto``, ``cpu``, ``cuda``,
            ``cuda:N``); None: the detector on ``auto`` (the GPU when there is one), the
            model on the CPU.

    Raises:
        ConfigError: if ``device`` is not a device, or CUDA without a GPU.
    """

    def __init__(
        self,
        piece_frames: int = FER_PIECE_FRAMES,
        exported: Runner | None = None,
        folder_fps: float = FRAME_FOLDER_FPS,
        device: str | None = None,
    ) -> None:
        self.prep = FER_PREPARE.with_face_device(device)
        self.limits, self.piece_frames = LimitsConfig(), piece_frames
        self.folder_fps = folder_fps
        # The model's device: ``device`` (as the face detector's), else the CPU.
        self.device = resolve_device(device or "cpu", option="--device")
        self.classes = list(FER2013_CLASSES)
        self.exported = exported  # faces (N, 1, 64, 64) -> probabilities (N, 7)
        self._model: MiniXception | None = None

    def model(self) -> MiniXception:
        """The model, read on first use, its weights in ``channels_last`` memory format (PyTorch's
        CPU convolutions run it about 1.8x faster than in NCHW, the same values to float
        rounding: benchmarks/README.md)."""
        if self._model is None:
            model = load_mini_xception().eval().to(self.device)
            self._model = model.to(memory_format=torch.channels_last)
        return self._model

    @torch.no_grad()
    def probabilities(self, gray: np.ndarray) -> np.ndarray:
        """``(n, 7)`` probabilities of gray faces ``(n, 64, 64)``, :data:`FER_BATCH` at a time."""
        batches = [self._batch(gray[i : i + FER_BATCH]) for i in range(0, len(gray), FER_BATCH)]
        return np.concatenate(batches) if batches else np.zeros((0, len(self.classes)), np.float32)

    def _batch(self, gray: np.ndarray) -> np.ndarray:
        """:meth:`probabilities` of at most :data:`FER_BATCH` faces."""
        faces = preprocess(gray)  # (n, 64, 64) -> (n, 1, 64, 64)
        if self.exported is not None:
            return self.exported(faces.numpy())
        faces = faces.to(self.device).contiguous(memory_format=torch.channels_last)
        return self.model().predict_proba(faces).cpu().numpy()

    @torch.no_grad()
    def predict(
        self, path: Path, stream: VideoStream, pieces: Iterable[np.ndarray], out: Path
    ) -> Prediction:
        """Smoothed per-frame probabilities, averaged into the video's."""
        classes = self.classes
        extra: dict[str, Any] = {"model": "fer2013_mini_xception"}
        if stream.status != "ok":
            record = finished_record(path, stream)
            empty = place_timeline(record, np.zeros((0, 7)), 7)
            return write_outputs(out, path, record, empty, classes, None, extra)
        probs = np.concatenate([self.probabilities(faces[..., 0]) for faces in pieces])
        record = finished_record(path, stream)
        smoothed = uniform_filter1d(probs, size=FER_SMOOTHING, axis=0, mode="nearest")
        video_probs = smoothed.mean(axis=0)
        extra["smoothing_frames"] = FER_SMOOTHING
        timeline = place_timeline(record, smoothed, 7)
        return write_outputs(out, path, record, timeline, classes, video_probs, extra)
