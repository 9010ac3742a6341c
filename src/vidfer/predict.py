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

import csv
import io
from collections.abc import Sequence
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
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.io.frame_folder import FRAME_FOLDER_FPS
from vidfer.io.run_folder import RunDir
from vidfer.models.mini_xception import FER2013_CLASSES, load_mini_xception, preprocess
from vidfer.pipelines import pipeline_for
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


def _open(
    path: Path,
    prep: PrepareConfig,
    limits: LimitsConfig,
    piece_frames: int,
    folder_fps: float,
    faces: FaceConfig | None = None,
) -> VideoStream:
    if not (path.is_file() or path.is_dir()):
        raise VideoError(path, "no such file or frame folder; check the path")
    return stream_video(path, prep, limits, piece_frames, folder_fps=folder_fps, faces=faces)


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
    atomic_write_json(out / "summary.json", summary)
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
    return Prediction(status=status, label=label, probabilities=probabilities, out_dir=out)


@torch.no_grad()
def _predict_fer(path: Path, out: Path, chunk_frames: int, folder_fps: float) -> Prediction:
    stream = _open(path, FER_PREPARE, LimitsConfig(), chunk_frames, folder_fps)
    classes = list(FER2013_CLASSES)
    extra: dict[str, Any] = {"model": "fer2013_mini_xception"}
    if stream.status != "ok":
        record = _finished(path, stream)
        return _write(
            out, path, record, _timeline(record, np.zeros((0, 7)), 7), classes, None, extra
        )
    model = load_mini_xception().eval()
    probs = np.concatenate(
        [
            model.predict_proba(preprocess(faces[..., 0])).numpy()  # (n, 64, 64) -> (n, 7)
            for _, faces in stream.pieces()
        ]
    )
    record = _finished(path, stream)
    smoothed = uniform_filter1d(probs, size=FER_SMOOTHING, axis=0, mode="nearest")
    video_probs = smoothed.mean(axis=0)
    extra["smoothing_frames"] = FER_SMOOTHING
    return _write(out, path, record, _timeline(record, smoothed, 7), classes, video_probs, extra)


@torch.no_grad()
def _predict_run(
    path: Path, run: RunDir, out: Path, chunk_frames: int | None, folder_fps: float | None
) -> Prediction:
    """Score through the run's pipeline, as its evaluation does."""
    config = run.config()
    classes = run.classes()
    settings = config.eval
    if chunk_frames is not None:
        settings = settings.model_copy(update={"chunk_frames": chunk_frames})
    limits = config.data.limits
    piece_frames = settings.chunk_frames or video_limits(limits).max_frames
    rate = folder_fps or config.data.frame_folder_fps
    # A dataset_mean face template is the one the run's store was prepared with.
    faces = resolved_faces(
        config.data.prepare, open_store(config.data.store_root, config.data.prepare)
    )
    stream = _open(path, config.data.prepare, limits, piece_frames, rate, faces)
    pipeline = pipeline_for(config)
    extra: dict[str, Any] = {"run": str(run.folder), "model": pipeline.model_name(config)}
    if stream.status != "ok":
        record = _finished(path, stream)
        empty = _timeline(record, np.zeros((0, len(classes))), len(classes))
        return _write(out, path, record, empty, classes, None, extra)
    score = pipeline.scorer(run, path, settings, resolve_device(config.train.device))
    try:
        scored = score(piece for _, piece in stream.pieces())
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
    return _write(out, path, record, timed, classes, scored.video, extra, why_not=scored.why_not)


def predict_video(
    video: str | Path,
    out_dir: str | Path,
    run_folder: str | Path | None = None,
    *,
    chunk_frames: int | None = None,
    frame_folder_fps: float | None = None,
) -> Prediction:
    """Score ``video`` and write the timeline, summary and plot into ``out_dir``.

    The video is decoded, its faces detected and aligned (when the run uses them) and scored in
    chunks, so that memory does not grow with its length (a frame-feature run computes its
    frame CNNs' features chunk by chunk; only one whose extractor is a clip run's backbone
    reads the whole video). A sparse auto-encoder run computes its block features chunk by chunk and
    holds only them, one vector per block, for its bidirectional LSTM; an activity run holds
    only the codes of its moving blocks.

    Args:
        video: The video file, or a frame folder (a folder of ``.png``/``.jpg``/``.bmp`` frames
            in natural order: :mod:`vidfer.io.frame_folder`).
        out_dir: Output folder.
        run_folder: A trained run; None uses the pretrained FER2013 mini-Xception on faces.
        chunk_frames: Frames per chunk; None takes the run's ``eval.chunk_frames`` (the default
            model: ``FER_PIECE_FRAMES``). The scores do not depend on it.
        frame_folder_fps: The frame rate of a frame folder (times in the timeline); None takes
            the run's ``data.frame_folder_fps`` (the default model: 25).

    Raises:
        VideoError: if the video cannot be decoded (the message names the file); a
            :class:`~vidfer.errors.QuarantinedVideoError` (status ``crashed``, ``timeout`` or
            ``out_of_memory``) if it crashed, stalled or exhausted its sandboxed decoding worker.
            Nothing is written then.
        CheckpointError: if ``run_folder`` is not a trained run.
        AssetError: if the default model's weights have not been fetched.
    """
    path, out = Path(video), Path(out_dir)
    if frame_folder_fps is not None and not frame_folder_fps > 0:
        raise ConfigError(f"--frame-folder-fps must be > 0, got {frame_folder_fps}")
    if run_folder is None:
        rate = frame_folder_fps or FRAME_FOLDER_FPS
        return _predict_fer(path, out, chunk_frames or FER_PIECE_FRAMES, rate)
    return _predict_run(path, RunDir(run_folder), out, chunk_frames, frame_folder_fps)
