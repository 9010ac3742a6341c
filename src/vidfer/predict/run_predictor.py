"""A trained run (or a ``vidfer video-attention`` output) as the model of ``vidfer predict``.

Imported only when a run is given, so that the default model's command does not import the
pipelines, the trainers and the export runtimes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfer.data.face_template import resolved_faces
from vidfer.data.prepare import open_store
from vidfer.data.preprocess import video_limits
from vidfer.data.stream import VideoStream
from vidfer.device import resolve_device
from vidfer.errors import ConfigError
from vidfer.export import ExportedVideoModel, exported_geometry, load_exported
from vidfer.io.run_folder import RunDir
from vidfer.models.trained import load_run_model
from vidfer.pipelines import pipeline_for
from vidfer.pipelines.base import Scorer
from vidfer.pipelines.clip import clip_scorer
from vidfer.pipelines.video_attention import VideoAttentionRun, is_video_attention_run
from vidfer.predict.outputs import Prediction, finished_record, place_timeline, write_outputs
from vidfer.predict.predictor import Predictor


class RunPredictor(Predictor):
    """A trained run, scoring through its pipeline as its evaluation does; or a ``vidfer
    video-attention`` output, scoring through its base run's model and its classifier
    (:class:`~vidfer.pipelines.video_attention.VideoAttentionRun`), with the base run's
    preprocessing.

    Args:
        run: The run folder.
        chunk_frames: Frames per piece (None: the run's ``eval.chunk_frames``).
        exported: An export folder to score with (on the CPU) instead of PyTorch.
        folder_fps: The frame rate of frame folders (None: the run's).
        device: Where the face detector and the model run; None: as the run's config says
            (``data.prepare.faces.device``, ``train.device``).

    Raises:
        ConfigError: if ``device`` is not a device, or CUDA without a GPU.
    """

    def __init__(
        self,
        run: RunDir,
        chunk_frames: int | None = None,
        exported: Path | None = None,
        folder_fps: float | None = None,
        device: str | None = None,
    ) -> None:
        self.run = run
        self.exported = exported
        self.attention = (
            VideoAttentionRun(run.folder) if is_video_attention_run(run.folder) else None
        )
        base = run if self.attention is None else self.attention.base
        self.config = base.config()
        self.classes = base.classes()
        settings = self.config.eval
        if chunk_frames is not None:
            settings = settings.model_copy(update={"chunk_frames": chunk_frames})
        self.settings = settings
        self.prep = self.config.data.prepare.with_face_device(device)  # the same store key
        self.limits = self.config.data.limits
        # A dataset_mean face template is the one the run's store was prepared with.
        self.faces = resolved_faces(self.prep, open_store(self.config.data.store_root, self.prep))
        self.piece_frames = settings.chunk_frames or video_limits(self.limits).max_frames
        self.folder_fps = folder_fps or self.config.data.frame_folder_fps
        self.pipeline = pipeline_for(self.config)
        self.device = (
            resolve_device(self.config.train.device)
            if device is None
            else resolve_device(device, option="--device")
        )

    def scorer(self, path: Path) -> Scorer:
        """The run's scorer of one video (of frames preprocessed as the run's store holds them)."""
        if self.attention is not None:
            if self.exported is not None:
                raise ConfigError(f"{self.run.folder}: --engine takes clip runs (3D models) only")
            return self.attention.scorer(self.settings, self.device)
        if self.exported is None:
            return self.pipeline.scorer(self.run, path, self.settings, self.device)
        if self.config.kind != "clip":
            raise ConfigError(f"{self.run.folder}: --engine takes clip runs (3D models) only")
        runner, meta = load_exported(self.exported)
        _, pooling = load_run_model(self.run, "cpu")
        model = ExportedVideoModel(runner, exported_geometry(meta), len(self.classes))
        cpu = torch.device("cpu")
        return clip_scorer(model, pooling, self.config, self.settings, cpu)

    @torch.no_grad()
    def predict(
        self, path: Path, stream: VideoStream, pieces: Iterable[np.ndarray], out: Path
    ) -> Prediction:
        """The run's per-frame and video scores."""
        classes = self.classes
        extra: dict[str, Any] = {
            "run": str(self.run.folder),
            "model": self.pipeline.model_name(self.config)
            if self.attention is None
            else self.attention.model_name(),
        }
        if stream.status != "ok":
            record = finished_record(path, stream)
            empty = place_timeline(record, np.zeros((0, len(classes))), len(classes))
            return write_outputs(out, path, record, empty, classes, None, extra)
        score = self.scorer(path)
        try:
            scored = score(pieces)
        except ConfigError:
            finished_record(path, stream)  # a video too short to score: its record says why
            raise
        record = finished_record(path, stream)
        frames = len(record.frame_indices)
        per_frame = scored.per_frame
        if per_frame is None or len(per_frame) != frames:  # the model's steps are not frames
            per_frame = np.full((frames, len(classes)), np.nan)
        if scored.step_weights:
            indices = np.asarray(record.frame_indices)
            extra["clip_weights"] = [
                {"frame": int(indices[round(centre)]), "weight": round(weight, 6)}
                for centre, weight in scored.step_weights
            ]
        timed = place_timeline(record, per_frame, len(classes))
        return write_outputs(
            out, path, record, timed, classes, scored.video, extra, why_not=scored.why_not
        )
