"""``vidfer predict VIDEO``: a model applied to a new video.

With ``--run RUN`` the trained run's model scores the video with the run's own preprocessing (face
pipeline included when the run used one). Without a run, the pretrained FER2013 mini-Xception
scores the aligned face of every frame (7 emotions), the per-frame probabilities are smoothed over
time and averaged into the video label.

Writes into the output folder:

- ``timeline.csv``: one row per decoded frame: source frame index, time, face status and box,
  and the class probabilities (empty where the frame has no face);
- ``summary.json``: status, video label and video-level class probabilities (none when no usable
  face was found: status ``no_face``; nothing moves for an activity run: ``no_motion``; never a
  made-up score);
- ``timeline.png``: the probabilities over time (frames without a face shaded).
"""

from __future__ import annotations

import abc
import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d

from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.config.faces import FaceConfig
from vidfer.data.face_template import resolved_faces
from vidfer.data.prepare import open_store
from vidfer.data.preprocess import video_limits
from vidfer.data.store import StoreRecord
from vidfer.data.stream import VideoStream, stream_video
from vidfer.device import resolve_device
from vidfer.errors import ConfigError, VideoError
from vidfer.export import ExportedVideoModel, Runner, exported_geometry, load_exported
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.io.frame_folder import FRAME_FOLDER_FPS
from vidfer.io.run_folder import RunDir
from vidfer.io.sandbox import Sandbox
from vidfer.models.mini_xception import (
    FER2013_CLASSES,
    MiniXception,
    load_mini_xception,
    preprocess,
)
from vidfer.models.trained import load_run_model
from vidfer.pipelines import pipeline_for
from vidfer.pipelines.base import Scorer
from vidfer.pipelines.clip import clip_scorer
from vidfer.pipelines.video_attention import VideoAttentionRun, is_video_attention_run
from vidfer.predict.annotate import annotate
from vidfer.viz.annotated_video import Annotated
from vidfer.viz.plots import plot_timeline

FACE_COLUMNS = ("face", "x1", "y1", "x2", "y2")

# The default model's face pipeline: mini-Xception reads 64x64 gray faces.
FER_PREPARE = PrepareConfig(faces={"detector": "mtcnn", "size": 64, "grayscale": True})
FER_SMOOTHING = 5  # frames in the moving average of per-frame probabilities
FER_PIECE_FRAMES = 256  # frames decoded, aligned and scored at a time by the default model


@dataclass(frozen=True)
class Prediction:
    """What :func:`predict_video` found.

    Attributes:
        status: ``ok`` or why there is no prediction (``no_face``, ``no_audio``, ``no_motion``).
        label: Predicted class (None without a prediction).
        probabilities: Class name -> video-level probability (empty without a prediction).
        out_dir: Where the files were written.
    """

    status: str
    label: str | None
    probabilities: dict[str, float]
    out_dir: Path


@dataclass(frozen=True)
class _Timeline:
    """Per-frame results: every decoded frame, probabilities where the model saw the frame."""

    frames: np.ndarray  # (N,) source frame indices
    probabilities: np.ndarray  # (N, K), NaN where the frame was not scored
    faces: list[dict[str, Any]] | None  # face records per frame, or None without faces


def _finished(path: Path, stream: VideoStream) -> StoreRecord:
    """The stream's record once its pieces were read; a video too short to score is an error."""
    record = stream.record()
    if record.status not in ("ok", "no_face"):
        raise VideoError(path, f"{record.status}: {record.reason}")
    return record


def _timeline(record: StoreRecord, scored: np.ndarray, num_classes: int) -> _Timeline:
    """Place the probabilities of the kept frames ``(T, K)`` among all decoded frames."""
    if record.faces is None:
        return _Timeline(np.asarray(record.frame_indices), scored, None)
    frames = np.array([item["frame"] for item in record.faces])
    probabilities = np.full((len(frames), num_classes), np.nan)
    if len(scored):
        position = {frame: i for i, frame in enumerate(frames)}
        probabilities[[position[f] for f in record.frame_indices]] = scored
    return _Timeline(frames, probabilities, record.faces)


def _timeline_csv(timeline: _Timeline, times: np.ndarray, classes: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["frame", "time_s", *FACE_COLUMNS, *[f"p_{name}" for name in classes]])
    for i, frame in enumerate(timeline.frames):
        face: list[Any] = [""] * len(FACE_COLUMNS)
        if timeline.faces is not None:
            item = timeline.faces[i]
            box = item["box"] or [""] * 4
            face = [item["status"], *box]
        row = timeline.probabilities[i]
        probs = [""] * len(classes) if np.isnan(row).any() else [f"{p:.6f}" for p in row]
        writer.writerow([int(frame), f"{times[i]:.4f}", *face, *probs])
    return buffer.getvalue()


def _write(
    out: Path,
    path: Path,
    record: StoreRecord,
    timeline: _Timeline,
    classes: Sequence[str],
    video_probs: np.ndarray | None,
    extra: dict[str, Any],
    why_not: str | None = None,
) -> Prediction:
    """Write the outputs; without ``video_probs``, the status is ``why_not`` or the record's."""
    times = timeline.frames / record.source_fps if record.source_fps else timeline.frames * 0.0
    status = "ok" if video_probs is not None else (why_not or record.status)
    probabilities = (
        {}
        if video_probs is None
        else {name: float(p) for name, p in zip(classes, video_probs, strict=True)}
    )
    label = classes[int(np.argmax(video_probs))] if video_probs is not None else None
    summary = {
        "video": str(path),
        "status": status,
        "label": label,
        "probabilities": probabilities,
        "reason": record.reason,
        "frames_decoded": len(timeline.frames),
        "frames_scored": int((~np.isnan(timeline.probabilities).any(axis=1)).sum()),
        "source_fps": record.source_fps,
        **extra,
    }
    atomic_write_text(out / "timeline.csv", _timeline_csv(timeline, times, classes))
    title = (
        f"{path.name}: {label} ({max(probabilities.values()):.2f})"
        if label
        else (f"{path.name}: {status}")
    )
    plot_timeline(
        times,
        np.nan_to_num(timeline.probabilities),
        classes,
        out / "timeline.png",
        title=title,
        valid=~np.isnan(timeline.probabilities).any(axis=1),
    )
    atomic_write_json(out / "summary.json", summary)  # last: a folder with it is complete
    return Prediction(status=status, label=label, probabilities=probabilities, out_dir=out)


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


class FerPredictor(Predictor):
    """The pretrained FER2013 mini-Xception on the aligned face of every frame."""

    def __init__(
        self,
        piece_frames: int = FER_PIECE_FRAMES,
        exported: Runner | None = None,
        folder_fps: float = FRAME_FOLDER_FPS,
    ) -> None:
        self.prep, self.limits, self.piece_frames = FER_PREPARE, LimitsConfig(), piece_frames
        self.folder_fps = folder_fps
        self.classes = list(FER2013_CLASSES)
        self.exported = exported  # faces (N, 1, 64, 64) -> probabilities (N, 7)
        self._model: MiniXception | None = None

    def model(self) -> MiniXception:
        """The model, read on first use."""
        if self._model is None:
            self._model = load_mini_xception().eval()
        return self._model

    @torch.no_grad()
    def probabilities(self, gray: np.ndarray) -> np.ndarray:
        """``(n, 7)`` probabilities of gray faces ``(n, 64, 64)``."""
        faces = preprocess(gray)  # (n, 64, 64) -> (n, 1, 64, 64)
        if self.exported is not None:
            return self.exported(faces.numpy())
        return self.model().predict_proba(faces).numpy()

    @torch.no_grad()
    def predict(
        self, path: Path, stream: VideoStream, pieces: Iterable[np.ndarray], out: Path
    ) -> Prediction:
        """Smoothed per-frame probabilities, averaged into the video's."""
        classes = self.classes
        extra: dict[str, Any] = {"model": "fer2013_mini_xception"}
        if stream.status != "ok":
            record = _finished(path, stream)
            empty = _timeline(record, np.zeros((0, 7)), 7)
            return _write(out, path, record, empty, classes, None, extra)
        probs = np.concatenate([self.probabilities(faces[..., 0]) for faces in pieces])
        record = _finished(path, stream)
        smoothed = uniform_filter1d(probs, size=FER_SMOOTHING, axis=0, mode="nearest")
        video_probs = smoothed.mean(axis=0)
        extra["smoothing_frames"] = FER_SMOOTHING
        timeline = _timeline(record, smoothed, 7)
        return _write(out, path, record, timeline, classes, video_probs, extra)


class RunPredictor(Predictor):
    """A trained run, scoring through its pipeline as its evaluation does; or a ``vidfer
    video-attention`` output, scoring through its base run's model and its classifier
    (:class:`~vidfer.pipelines.video_attention.VideoAttentionRun`), with the base run's
    preprocessing."""

    def __init__(
        self,
        run: RunDir,
        chunk_frames: int | None = None,
        exported: Path | None = None,
        folder_fps: float | None = None,
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
        self.prep, self.limits = self.config.data.prepare, self.config.data.limits
        # A dataset_mean face template is the one the run's store was prepared with.
        self.faces = resolved_faces(self.prep, open_store(self.config.data.store_root, self.prep))
        self.piece_frames = settings.chunk_frames or video_limits(self.limits).max_frames
        self.folder_fps = folder_fps or self.config.data.frame_folder_fps
        self.pipeline = pipeline_for(self.config)
        self.device = resolve_device(self.config.train.device)

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
            record = _finished(path, stream)
            empty = _timeline(record, np.zeros((0, len(classes))), len(classes))
            return _write(out, path, record, empty, classes, None, extra)
        score = self.scorer(path)
        try:
            scored = score(pieces)
        except ConfigError:
            _finished(path, stream)  # a video too short to score: its record says why
            raise
        record = _finished(path, stream)
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
        timed = _timeline(record, per_frame, len(classes))
        return _write(
            out, path, record, timed, classes, scored.video, extra, why_not=scored.why_not
        )


def make_predictor(
    run_folder: str | Path | None = None,
    *,
    chunk_frames: int | None = None,
    exported: str | Path | None = None,
    frame_folder_fps: float | None = None,
) -> Predictor:
    """The predictor of a trained run, or of the default FER model when ``run_folder`` is None.

    Args:
        run_folder: A trained run or a ``vidfer video-attention`` output, or None.
        chunk_frames: Frames per piece (see :func:`predict_video`).
        exported: A ``vidfer export`` folder whose model (ONNX Runtime or TorchScript) scores
            in place of the PyTorch one; None: PyTorch.
        frame_folder_fps: The frame rate of frame folders; None takes the run's
            ``data.frame_folder_fps`` (the default model: 25).

    Raises:
        CheckpointError: if ``run_folder`` is not a trained run.
        ConfigError: if ``exported`` holds no export, or one of another model, or
            ``frame_folder_fps`` is not positive.
    """
    if frame_folder_fps is not None and not frame_folder_fps > 0:
        raise ConfigError(f"--frame-folder-fps must be > 0, got {frame_folder_fps}")
    if exported is not None:
        _, meta = load_exported(exported)
        expected = "fer2013_mini_xception" if run_folder is None else "a clip run's model"
        if (run_folder is None) != (meta["model"] == "fer2013_mini_xception"):
            raise ConfigError(f"{exported}: exports {meta['model']}, not {expected}")
    if run_folder is None:
        runner = None if exported is None else load_exported(exported)[0]
        rate = frame_folder_fps or FRAME_FOLDER_FPS
        return FerPredictor(chunk_frames or FER_PIECE_FRAMES, runner, rate)
    return RunPredictor(
        RunDir(run_folder),
        chunk_frames,
        None if exported is None else Path(exported),
        frame_folder_fps,
    )


def predict_video(
    video: str | Path,
    out_dir: str | Path,
    run_folder: str | Path | None = None,
    *,
    chunk_frames: int | None = None,
    annotate: bool = False,
    exported: str | Path | None = None,
    frame_folder_fps: float | None = None,
) -> Prediction:
    """Score ``video`` and write the timeline, summary and plot into ``out_dir``.

    The video is decoded, its faces detected and aligned (when the run uses them) and scored in
    chunks, so that memory does not grow with its length (frame-feature runs excepted: they read
    the whole video). A sparse auto-encoder run computes its block features chunk by chunk and
    holds only them, one vector per block, for its bidirectional LSTM; an activity run holds
    only the codes of its moving blocks.

    Args:
        video: The video file, or a frame folder (a folder of ``.png``/``.jpg``/``.bmp`` frames
            in natural order: :mod:`vidfer.io.frame_folder`).
        out_dir: Output folder.
        run_folder: A trained run or a ``vidfer video-attention`` output; None uses the
            pretrained FER2013 mini-Xception on faces.
        chunk_frames: Frames per chunk; None takes the run's ``eval.chunk_frames`` (the default
            model: ``FER_PIECE_FRAMES``). The scores do not depend on it.
        annotate: Also write ``annotated.mp4``, the video with the prediction drawn on it
            (:mod:`vidfer.predict.annotate`).
        exported: A ``vidfer export`` folder to score with (ONNX Runtime or TorchScript)
            instead of the PyTorch model (:func:`make_predictor`).
        frame_folder_fps: The frame rate of a frame folder (times in the timeline); None takes
            the run's ``data.frame_folder_fps`` (the default model: 25).

    Raises:
        VideoError: if the video cannot be decoded (the message names the file); a
            :class:`~vidfer.errors.QuarantinedVideoError` (status ``crashed``, ``timeout`` or
            ``out_of_memory``) if it crashed, stalled or exhausted its sandboxed decoding worker.
            Nothing is written then.
        CheckpointError: if ``run_folder`` is not a trained run.
        AssetError: if the default model's weights have not been fetched.
        ConfigError: if ``frame_folder_fps`` is not positive, or ``annotate`` is asked of a
            frame folder.
    """
    path = Path(video)
    if annotate and path.is_dir():
        raise ConfigError(f"{path}: a frame folder; --annotate draws on video files only")
    predictor = make_predictor(
        run_folder,
        chunk_frames=chunk_frames,
        exported=exported,
        frame_folder_fps=frame_folder_fps,
    )
    stream = predictor.open(path)
    prediction = predictor.predict(
        path, stream, (piece for _, piece in stream.pieces()), Path(out_dir)
    )
    if annotate:
        predictor.annotate(path, prediction.out_dir)
    return prediction
