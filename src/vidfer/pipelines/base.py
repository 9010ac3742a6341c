"""The protocol every kind of run follows, and what its per-video scoring returns.

A kind of run (:data:`vidfer.config.RunKind`) is trained, evaluated and applied to a new video
by one :class:`Pipeline`. Evaluation and ``vidfer predict`` reach a video's scores through the
same pipeline, so that a video gets the same scores from either.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vidfer.config import EvalConfig, RunConfig, RunKind
from vidfer.data.prepared import PreparedDataset
from vidfer.errors import ConfigError
from vidfer.evaluation.evaluate import EvalOutcome
from vidfer.io.run_folder import RunDir
from vidfer.training.trainer import TrainResult


@dataclass(frozen=True)
class Scored:
    """One new video scored by a trained run.

    Attributes:
        per_frame: ``(T, K)`` class probabilities of the ``T`` frames the model read (after
            face filtering), or None where the model's steps are not frames.
        video: ``(K,)`` video-level class probabilities, or None without a prediction.
        why_not: The status when there is no prediction (e.g. ``no_audio``, ``no_motion``).
        step_weights: ``(frame, weight)`` pairs: the temporal pooling's weight of each score
            step for the predicted class, at the step's centre frame (among the ``T`` frames).
    """

    per_frame: np.ndarray | None
    video: np.ndarray | None
    why_not: str | None = None
    step_weights: list[tuple[float, float]] = field(default_factory=list)


Scorer = Callable[[Iterable[np.ndarray]], Scored]
"""Scores one video from its pieces of frames ``(n, S, S, C)``, read in order, all of them."""


class Pipeline(Protocol):
    """One kind of run: how it trains, evaluates and scores a new video.

    Attributes:
        kind: The config kind it serves.
    """

    kind: RunKind

    def resolved(self, config: RunConfig) -> RunConfig:
        """The config as the run folder records it (what the kind derives filled in)."""
        ...

    def train(self, config: RunConfig, run: RunDir, *, resume: bool) -> TrainResult:
        """Train as configured into ``run`` (already checked: empty, or resumable)."""
        ...

    def evaluate(self, run: RunDir, split: str) -> EvalOutcome:
        """Score one split of the run's dataset with the trained run."""
        ...

    def scorer(
        self, run: RunDir, video: Path, settings: EvalConfig, device: torch.device
    ) -> Scorer:
        """The function that scores the new ``video`` (read in pieces) with the trained run."""
        ...

    def model_name(self, config: RunConfig) -> str:
        """The name ``vidfer predict`` reports for the run's model."""
        ...

    def video_features(
        self, run: RunDir, data: PreparedDataset, device: torch.device
    ) -> dict[str, np.ndarray]:
        """One feature vector ``(D,)`` per usable video of ``data``, by video id (feature
        fusion's input).

        Raises:
            ConfigError: if the kind has no such features.
        """
        ...


class FittedPipeline(abc.ABC):
    """Base of the kinds fitted in stages from cached features (frames, sparse_ae, activity):
    a resumed run reads the features from their cache, the stages it finished from their
    checkpoints, continues an interrupted recurrent head from its last epoch, and fits the
    closed-form parts again (deterministic)."""

    @abc.abstractmethod
    def fit(self, config: RunConfig, folder: Path, *, resume: bool) -> list[dict[str, Any]]:
        """Fit the run into ``folder`` (continuing it, with ``resume``); its metrics lines."""

    def resolved(self, config: RunConfig) -> RunConfig:
        """The config itself: these kinds derive nothing."""
        return config

    def train(self, config: RunConfig, run: RunDir, *, resume: bool) -> TrainResult:
        """Fit (continuing, on resume) and report the metrics lines."""
        lines = self.fit(config, run.folder, resume=resume)
        return TrainResult(run=run, epochs=len(lines), stopped_early=False, metrics=lines)


def no_video_features(kind: str) -> ConfigError:
    """The error of a kind whose runs give no video features to fuse."""
    return ConfigError(
        f"feature fusion takes clip-model and frame-feature runs, not a {kind} run; fuse its "
        "scores instead (method sci, mean, max or weighted)"
    )
