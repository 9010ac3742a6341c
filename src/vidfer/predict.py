"""``vidfer predict VIDEO --run RUN``: a trained model applied to a new video.

Writes into the output folder:

- ``timeline.csv``: one row per kept frame: frame index, time, face columns (empty for
  full-frame models), and the class probabilities of that frame's temporal score;
- ``summary.json``: status, video label, video-level class probabilities;
- ``timeline.png``: the probabilities over time.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfer.data.prepare import prepare_one, video_limits
from vidfer.data.store import SourceIdentity
from vidfer.data.transforms import build_clip_transform
from vidfer.errors import VideoError
from vidfer.evaluation.scoring import score_video, video_logits
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.training.device import resolve_device
from vidfer.training.run import RunDir
from vidfer.viz.plots import plot_timeline

FACE_COLUMNS = ("face", "x1", "y1", "x2", "y2")


@dataclass(frozen=True)
class Prediction:
    """What ``predict_video`` found.

    Attributes:
        status: ``ok`` or why there is no prediction (e.g. ``no_face``).
        label: Predicted class (None without a prediction).
        probabilities: Class name -> video-level probability.
        out_dir: Where the files were written.
    """

    status: str
    label: str | None
    probabilities: dict[str, float]
    out_dir: Path


def _timeline_csv(
    frames: np.ndarray, times: np.ndarray, probs: np.ndarray, classes: list[str]
) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["frame", "time_s", *FACE_COLUMNS, *[f"p_{name}" for name in classes]])
    for frame, time_s, row in zip(frames, times, probs, strict=True):
        writer.writerow(
            [int(frame), f"{time_s:.4f}", *[""] * len(FACE_COLUMNS), *[f"{p:.6f}" for p in row]]
        )
    return buffer.getvalue()


@torch.no_grad()
def predict_video(video: str | Path, run_folder: str | Path, out_dir: str | Path) -> Prediction:
    """Score ``video`` with the trained run and write the timeline, summary and plot.

    Raises:
        VideoError: if the video cannot be decoded (the message names the file).
        CheckpointError: if ``run_folder`` is not a trained run.
    """
    path, out = Path(video), Path(out_dir)
    run = RunDir(run_folder)
    config = run.config()
    classes = run.classes()
    device = resolve_device(config.train.device)
    model, pooling = run.load_model(device)
    if not path.is_file():
        raise VideoError(path, "file not found; check the path")
    record, frames = prepare_one(
        path, SourceIdentity.of(path), config.data.prepare, video_limits(config.data.limits)
    )
    if frames is None:
        raise VideoError(path, f"{record.status}: {record.reason}")
    clip = build_clip_transform(config.transforms, train=False)(frames).to(device)  # (C, T, S, S)
    score_map = score_video(model, clip, config.eval)
    per_frame = score_map.per_frame(len(frames)).softmax(dim=0).T.cpu().numpy()  # (T, K)
    video_probs = video_logits(score_map, pooling).softmax(dim=0).cpu().numpy()  # (K,)
    indices = np.asarray(record.frame_indices)
    times = indices / record.source_fps
    label = classes[int(video_probs.argmax())]
    summary: dict[str, Any] = {
        "video": str(path),
        "run": str(run.folder),
        "status": "ok",
        "label": label,
        "probabilities": {name: float(p) for name, p in zip(classes, video_probs, strict=True)},
        "frames": len(frames),
        "fps": record.fps,
        "score_steps": int(score_map.scores.shape[1]),
    }
    atomic_write_text(out / "timeline.csv", _timeline_csv(indices, times, per_frame, classes))
    atomic_write_json(out / "summary.json", summary)
    plot_timeline(
        times,
        per_frame,
        classes,
        out / "timeline.png",
        title=f"{path.name}: {label} ({video_probs.max():.2f})",
    )
    return Prediction(status="ok", label=label, probabilities=summary["probabilities"], out_dir=out)
