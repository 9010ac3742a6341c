"""The outputs of ``vidfer predict VIDEO`` in its output folder.

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

from vidfer.data.store import StoreRecord
from vidfer.data.stream import VideoStream
from vidfer.errors import VideoError
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.viz.plots import plot_timeline

FACE_COLUMNS = ("face", "x1", "y1", "x2", "y2")


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
class Timeline:
    """Per-frame results: every decoded frame, probabilities where the model saw the frame."""

    frames: np.ndarray  # (N,) source frame indices
    probabilities: np.ndarray  # (N, K), NaN where the frame was not scored
    faces: list[dict[str, Any]] | None  # face records per frame, or None without faces


def finished_record(path: Path, stream: VideoStream) -> StoreRecord:
    """The stream's record once its pieces were read; a video too short to score is an error."""
    record = stream.record()
    if record.status not in ("ok", "no_face"):
        raise VideoError(path, f"{record.status}: {record.reason}")
    return record


def place_timeline(record: StoreRecord, scored: np.ndarray, num_classes: int) -> Timeline:
    """Place the probabilities of the kept frames ``(T, K)`` among all decoded frames."""
    if record.faces is None:
        return Timeline(np.asarray(record.frame_indices), scored, None)
    frames = np.array([item["frame"] for item in record.faces])
    probabilities = np.full((len(frames), num_classes), np.nan)
    if len(scored):
        position = {frame: i for i, frame in enumerate(frames)}
        probabilities[[position[f] for f in record.frame_indices]] = scored
    return Timeline(frames, probabilities, record.faces)


def timeline_csv(timeline: Timeline, times: np.ndarray, classes: Sequence[str]) -> str:
    """The text of ``timeline.csv``: one row per decoded frame, its time ``times`` ``(N,)``."""
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


def write_outputs(
    out: Path,
    path: Path,
    record: StoreRecord,
    timeline: Timeline,
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
    atomic_write_text(out / "timeline.csv", timeline_csv(timeline, times, classes))
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
