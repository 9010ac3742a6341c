"""Evaluation of a model on whole videos, and ``vidfer evaluate RUN --split test``."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfer.config import RunConfig
from vidfer.data.dataset import VideoItem
from vidfer.data.prepared import load_dataset
from vidfer.data.samplers import sampler_from_config
from vidfer.data.store import PreparedStore
from vidfer.data.transforms import build_clip_transform
from vidfer.errors import ConfigError
from vidfer.evaluation.metrics import classification_metrics
from vidfer.evaluation.scoring import frame_blocks, score_stream, video_logits
from vidfer.evaluation.views import views_logits
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.models import build_pooling
from vidfer.models.base import VideoModel
from vidfer.progress import track
from vidfer.training.device import resolve_device
from vidfer.training.run import RunDir
from vidfer.viz.plots import plot_confusion


@dataclass(frozen=True)
class EvalOutcome:
    """Video-level results of one evaluation.

    Attributes:
        loss: Mean cross-entropy of the video scores.
        probabilities: ``(N, K)`` class probabilities per video.
        labels: ``(N,)`` true class indices.
        video_ids: The videos, in order.
    """

    loss: float
    probabilities: np.ndarray
    labels: np.ndarray
    video_ids: list[str]

    @property
    def accuracy(self) -> float:
        """Share of videos whose most probable class is the true one."""
        return float(np.mean(self.probabilities.argmax(axis=1) == self.labels))


@torch.no_grad()
def evaluate_items(
    model: VideoModel,
    pooling: nn.Module,
    items: Sequence[VideoItem],
    store: PreparedStore,
    config: RunConfig,
    device: torch.device,
) -> EvalOutcome:
    """Score every video whole (one pass or sliding windows) and compute the metrics.

    The video-level pooling is ``config.eval.pooling`` when set, else ``pooling``; in
    ``views`` mode, the fusion of :mod:`vidfer.evaluation.views` replaces it.
    """
    model.eval()
    pooling = eval_pooling(config, pooling, model.num_classes)
    pooling.eval()
    transform = build_clip_transform(config.transforms, train=False)
    sampler = sampler_from_config(config.sampler)
    logits = []
    for item in track(items, total=len(items), description="evaluating"):
        if config.eval.mode == "views":
            logits.append(views_logits(model, store.frames(item.key), sampler, config, device))
            continue
        blocks = frame_blocks(store.frames(item.key), transform, device, config.eval.chunk_frames)
        score_map = score_stream(model, blocks, config.eval)
        logits.append(video_logits(score_map, pooling).float().cpu())
    scores = torch.stack(logits)  # (N, K)
    labels = torch.tensor([item.row.label_index for item in items])
    loss = float(F.cross_entropy(scores, labels))
    return EvalOutcome(
        loss=loss,
        probabilities=scores.softmax(dim=1).numpy(),
        labels=labels.numpy(),
        video_ids=[item.row.video_id for item in items],
    )


def eval_pooling(config: RunConfig, trained: nn.Module, num_classes: int) -> nn.Module:
    """The video-level pooling at test time: ``config.eval.pooling`` if set, else ``trained``.

    Raises:
        ConfigError: if ``eval.pooling`` has learned parameters (they would be untrained).
    """
    if config.eval.pooling is None:
        return trained
    chosen = config.eval.pooling
    pooling = build_pooling(chosen.name, num_classes=num_classes, **chosen.params)
    if any(True for _ in pooling.parameters()):
        raise ConfigError(
            f"eval.pooling {chosen.name!r} has learned parameters; at test time use a fixed "
            "pooling (avg, max, softmax with gamma) or leave eval.pooling unset"
        )
    return pooling


def write_evaluation(folder: Path, outcome: EvalOutcome, classes: Sequence[str]) -> dict[str, Any]:
    """Write predictions.csv, metrics.json, confusion.csv and confusion.png into ``folder``.

    Returns:
        The metrics with class names.
    """
    metrics = classification_metrics(
        outcome.labels, outcome.probabilities.argmax(axis=1), classes, outcome.probabilities
    )
    metrics["loss"] = outcome.loss
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["video_id", "label", "prediction", *[f"p_{name}" for name in classes]])
    for video_id, label, probs in zip(
        outcome.video_ids, outcome.labels, outcome.probabilities, strict=True
    ):
        writer.writerow(
            [video_id, classes[label], classes[int(probs.argmax())], *[f"{p:.6f}" for p in probs]]
        )
    atomic_write_text(folder / "predictions.csv", buffer.getvalue())
    atomic_write_json(folder / "metrics.json", metrics)
    confusion = io.StringIO()
    table = csv.writer(confusion, lineterminator="\n")
    table.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, metrics["confusion"], strict=True):
        table.writerow([name, *row])
    atomic_write_text(folder / "confusion.csv", confusion.getvalue())
    plot_confusion(np.asarray(metrics["confusion"]), classes, folder / "confusion.png")
    return metrics


def evaluate_run(run_folder: str | Path, split: str = "test") -> dict[str, Any]:
    """Evaluate a trained run on one split and write ``RUN/eval_<split>/``.

    Raises:
        ConfigError: if the split has no usable video.
    """
    run = RunDir(run_folder)
    config = run.config()
    if config.sparse_ae is not None:
        from vidfer.training.sparse_ae_pipeline import evaluate_sparse_ae_run

        return write_evaluation(
            run.folder / f"eval_{split}", evaluate_sparse_ae_run(run, split), run.classes()
        )
    if config.activity is not None:
        from vidfer.training.activity_pipeline import evaluate_activity_run

        return write_evaluation(
            run.folder / f"eval_{split}", evaluate_activity_run(run, split), run.classes()
        )
    if config.frames is not None:
        from vidfer.training.frame_pipeline import evaluate_frame_run

        return write_evaluation(
            run.folder / f"eval_{split}", evaluate_frame_run(run, split), run.classes()
        )
    device = resolve_device(config.train.device)
    model, pooling = run.load_model(device)
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    items = data.split(split)
    if not items:
        raise ConfigError(f"{config.data.manifest}: no usable video in split {split!r}")
    outcome = evaluate_items(model, pooling, items, data.store, config, device)
    return write_evaluation(run.folder / f"eval_{split}", outcome, run.classes())
