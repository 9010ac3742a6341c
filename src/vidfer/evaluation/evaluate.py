"""Evaluation of a clip model on whole videos: scores, the outcome and its files."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidfer.config import EvalConfig, RunConfig
from vidfer.data.dataset import VideoItem
from vidfer.data.sampler_zoo import sampler_from_config
from vidfer.data.store import PreparedStore
from vidfer.data.transforms import build_clip_transform
from vidfer.errors import ConfigError
from vidfer.evaluation.metrics import classification_metrics
from vidfer.evaluation.scoring import ScoreMap, frame_pieces, score_stream, video_logits
from vidfer.evaluation.views import views_logits
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.models import build_pooling
from vidfer.models.base import VideoModel
from vidfer.models.pooling import TemporalPooling
from vidfer.progress import track
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


@dataclass(frozen=True)
class ClipScores:
    """One video scored by a clip model.

    Attributes:
        video: ``(K,)`` video-level logits.
        score_map: The per-step scores behind them; None in ``views`` mode (clip pairs and
            crops fused into one score: no step maps to a frame).
    """

    video: torch.Tensor
    score_map: ScoreMap | None


@dataclass(frozen=True)
class ClipEvaluator:
    """A trained clip model with its test-time pooling and settings: scores whole videos.

    Evaluation and ``vidfer predict`` both score through :meth:`score`, so a video gets the same
    scores from either.

    Attributes:
        model: The video model, in eval mode.
        pooling: The video-level pooling at test time (see :func:`eval_pooling`).
        config: The run config (transforms, sampler and views settings).
        device: Where the model runs.
        settings: How whole videos are scored (the run's ``eval`` section, possibly with another
            ``chunk_frames``).
    """

    model: VideoModel
    pooling: TemporalPooling
    config: RunConfig
    device: torch.device
    settings: EvalConfig

    @classmethod
    def of(
        cls,
        model: VideoModel,
        trained: TemporalPooling,
        config: RunConfig,
        device: torch.device,
        settings: EvalConfig | None = None,
    ) -> ClipEvaluator:
        """The evaluator of a model and its trained pooling, as ``config.eval`` asks.

        Raises:
            ConfigError: if ``eval.pooling`` has learned parameters.
        """
        model.eval()
        pooling = eval_pooling(config, trained, model.num_classes).eval()
        return cls(model, pooling, config, device, settings or config.eval)

    @torch.no_grad()
    def score(self, pieces: Iterable[np.ndarray]) -> ClipScores:
        """Score one video that arrives in consecutive pieces of frames ``(n, H, W, C)``.

        Dense and windows modes read the pieces one at a time; ``views`` mode samples clips
        across the whole video, so it joins the pieces first.
        """
        if self.settings.mode == "views":
            frames = np.concatenate(list(pieces))  # (T, H, W, C): the whole video
            sampler = sampler_from_config(self.config.sampler)
            logits = views_logits(self.model, frames, sampler, self.config, self.device)
            return ClipScores(logits, None)
        transform = build_clip_transform(self.config.transforms, train=False)
        blocks = (transform(piece).to(self.device) for piece in pieces)  # (C, n, S, S) each
        score_map = score_stream(self.model, blocks, self.settings)
        return ClipScores(video_logits(score_map, self.pooling).float().cpu(), score_map)

    def evaluate(self, items: Sequence[VideoItem], store: PreparedStore) -> EvalOutcome:
        """Score every video whole and gather the video-level outcome."""
        logits = [
            self.score(frame_pieces(store.frames(item.key), self.settings.chunk_frames)).video
            for item in track(items, total=len(items), description="evaluating")
        ]
        scores = torch.stack(logits)  # (N, K)
        labels = torch.tensor([item.row.label_index for item in items])
        return EvalOutcome(
            loss=float(F.cross_entropy(scores, labels)),
            probabilities=scores.softmax(dim=1).numpy(),
            labels=labels.numpy(),
            video_ids=[item.row.video_id for item in items],
        )


def eval_pooling(config: RunConfig, trained: TemporalPooling, num_classes: int) -> TemporalPooling:
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
