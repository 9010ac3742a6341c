"""A model ready to score new videos one after another: what every predictor shares.

A predictor reads a video piece by piece (:func:`vidfer.data.stream.stream_video`, faces
detected, tracked and aligned when its model uses them) and writes the outputs of
:mod:`vidfer.predict.outputs`. :mod:`vidfer.predict.fer` is the default FER model's,
:mod:`vidfer.predict.run_predictor` a trained run's.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.config.faces import FaceConfig
from vidfer.data.stream import VideoStream, stream_video
from vidfer.errors import VideoError
from vidfer.io.sandbox import Sandbox
from vidfer.predict.annotate import annotate
from vidfer.predict.outputs import Prediction
from vidfer.viz.annotated_video import Annotated


class Predictor(abc.ABC):
    """A model ready to score new videos one after another (loaded once, on first use).

    Attributes:
        prep: The preprocessing its videos are read with.
        limits: Limits on untrusted input (the decoding worker's too).
        piece_frames: Decoded frames per piece.
        folder_fps: The frame rate of a frame folder (times in the timeline).
        faces: The face options to read with, when not ``prep``'s own (a run's resolved
            ``dataset_mean`` template); None: ``prep``'s.
        classes: The class names, in the model's order.
    """

    prep: PrepareConfig
    classes: list[str]
    limits: LimitsConfig
    piece_frames: int
    folder_fps: float
    faces: FaceConfig | None = None  # the face options, when not prep's own

    def open(self, path: Path, sandbox: Sandbox[Any] | None = None) -> VideoStream:
        """The video, ready to be read piece by piece (faces detected when the model uses them).

        Args:
            path: The video file or frame folder (:mod:`vidfer.io.frame_folder`).
            sandbox: A decoding sandbox to reuse (:func:`vidfer.data.stream.decoding_sandbox`);
                None starts one for this video.

        Raises:
            VideoError: if the file or folder is missing or cannot be decoded.
        """
        if not (path.is_file() or path.is_dir()):
            raise VideoError(path, "no such file or frame folder; check the path")
        return stream_video(
            path,
            self.prep,
            self.limits,
            self.piece_frames,
            folder_fps=self.folder_fps,
            faces=self.faces,
            sandbox=sandbox,
        )

    def annotate(self, path: Path, out: Path) -> Annotated:
        """Write ``out/annotated.mp4`` from the video and its prediction in ``out``.

        Raises:
            VideoError: if the video cannot be read again, or is a frame folder (no video to
                draw on).
        """
        if path.is_dir():
            raise VideoError(path, "a frame folder: --annotate draws on video files only")
        return annotate(path, out, self.classes, self.limits, self.piece_frames)

    @abc.abstractmethod
    def predict(
        self, path: Path, stream: VideoStream, pieces: Iterable[np.ndarray], out: Path
    ) -> Prediction:
        """Score the video from its preprocessed ``pieces`` (those of ``stream``, all of them,
        in order) and write the outputs into ``out``."""
