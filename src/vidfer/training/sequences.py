"""Training and scoring of classifiers over stored feature sequences.

Shared by the frame-feature recurrent models (IRNN, LSTM, residual BiLSTM) and the video-level
self-attention of ``vidfer video-attention``: every model here is called as
``model(features (B, N, D), mask (B, N)) -> logits (B, K)``, where the mask marks each row's real
steps (a prefix). Each epoch draws, for every training video, which of its steps to use (a
random window, a random ordered subset, or all), pads the batch, and steps the optimiser;
validation scores whole videos one at a time (no padding at all), early stopping keeps the
model with the best validation loss, and every epoch's line goes to ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfer.config import TrainConfig
from vidfer.errors import CheckpointError
from vidfer.evaluation.evaluate import EvalOutcome
from vidfer.io.atomic import atomic_write_text
from vidfer.io.checkpoint import load_checkpoint, save_checkpoint
from vidfer.training.resume import capture_rng, restore_rng

Chooser = Callable[[np.random.Generator, int], np.ndarray]
"""``(rng, length) -> indices`` (increasing) of the steps a training video contributes."""


@dataclass(frozen=True)
class LabelledSequence:
    """One video's feature sequence and label.

    Attributes:
        video_id: The manifest's video id.
        label: Class index.
        features: ``(T, D)`` features, one row per step (memory-mapped is fine).
    """

    video_id: str
    label: int
    features: np.ndarray


def every_step(_rng: np.random.Generator, length: int) -> np.ndarray:
    """All steps."""
    return np.arange(length)


def random_window(size: int) -> Chooser:
    """A random contiguous window of ``size`` steps (the whole video when shorter)."""

    def choose(rng: np.random.Generator, length: int) -> np.ndarray:
        start = int(rng.integers(0, max(length - size, 0) + 1))
        return np.arange(start, min(start + size, length))

    return choose


def random_subset(size: int) -> Chooser:
    """``size`` distinct steps in temporal order, drawn at random (all when shorter; Xu)."""

    def choose(rng: np.random.Generator, length: int) -> np.ndarray:
        if length <= size:
            return np.arange(length)
        return np.sort(rng.choice(length, size, replace=False))

    return choose


def evenly_spaced(size: int | None) -> Callable[[int], np.ndarray]:
    """Test-time choice: ``size`` evenly spaced steps (all when None or shorter)."""

    def choose(length: int) -> np.ndarray:
        if size is None or length <= size:
            return np.arange(length)
        return np.round(np.linspace(0, length - 1, size)).astype(int)

    return choose


ALL_STEPS = evenly_spaced(None)


def pad_features(
    sequences: Sequence[np.ndarray], steps: Sequence[np.ndarray], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded features ``(B, N, D)`` and prefix mask ``(B, N)`` of the ``steps`` of feature
    sequences ``(T, D)``."""
    longest = max(len(index) for index in steps)
    features = torch.zeros(len(sequences), longest, sequences[0].shape[1])
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for row, (sequence, index) in enumerate(zip(sequences, steps, strict=True)):
        features[row, : len(index)] = torch.from_numpy(np.asarray(sequence[index]))
        mask[row, : len(index)] = True
    return features.to(device), mask.to(device)


def pad_batch(
    sequences: Sequence[LabelledSequence], steps: Sequence[np.ndarray], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded features ``(B, N, D)``, prefix mask ``(B, N)`` and labels ``(B,)``."""
    features, mask = pad_features([sequence.features for sequence in sequences], steps, device)
    labels = torch.tensor([sequence.label for sequence in sequences])
    return features, mask, labels.to(device)


@torch.no_grad()
def sequence_logits(
    model: nn.Module, features: np.ndarray, steps: np.ndarray, device: torch.device
) -> torch.Tensor:
    """Video logits ``(K,)`` of one video's features ``(T, D)`` at ``steps``, in one pass
    without padding (the model in eval mode): how evaluation and ``vidfer predict`` score."""
    padded, mask = pad_features([features], [steps], device)  # (1, N, D), (1, N)
    return model(padded, mask)[0].float().cpu()


@torch.no_grad()
def score_sequences(
    model: nn.Module,
    sequences: Sequence[LabelledSequence],
    device: torch.device,
    select: Callable[[int], np.ndarray] = ALL_STEPS,
    after_each: Callable[[], None] | None = None,
) -> EvalOutcome:
    """Video-level outcome, one whole (or ``select``-ed) video per forward pass, eval mode.

    ``after_each`` runs after every video's pass (e.g. to read recorded attention weights).
    """
    model.eval()
    logits = []
    for sequence in sequences:
        steps = select(len(sequence.features))
        logits.append(sequence_logits(model, sequence.features, steps, device))
        if after_each is not None:
            after_each()
    scores = torch.stack(logits)  # (N, K)
    labels = torch.tensor([s.label for s in sequences])
    return EvalOutcome(
        loss=float(F.cross_entropy(scores, labels)),
        probabilities=scores.softmax(dim=1).numpy(),
        labels=labels.numpy(),
        video_ids=[s.video_id for s in sequences],
    )


@dataclass(frozen=True)
class SequenceTraining:
    """How to train.

    Attributes:
        epochs: Maximum epochs.
        patience: Stop after this many epochs without a better monitored loss (None: never).
        batch_size: Videos per step.
        clip_grad: Clip the gradient norm to this (Kahou: 1.0); None: no clipping.
        seed: Seed of the order and the step choice.
        choose: Which steps of a training video to use in an epoch.
        select: Which steps of a monitored video to score.
    """

    epochs: int
    patience: int | None
    batch_size: int
    clip_grad: float | None
    seed: int
    choose: Chooser = every_step
    select: Callable[[int], np.ndarray] = ALL_STEPS

    @classmethod
    def of(
        cls,
        train: TrainConfig,
        seed: int,
        choose: Chooser = every_step,
        select: Callable[[int], np.ndarray] = ALL_STEPS,
    ) -> SequenceTraining:
        """The settings a run config's ``train`` section gives."""
        return cls(
            train.epochs, train.patience, train.batch_size, train.clip_grad, seed, choose, select
        )


def _resumed(
    checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, float, int, list[dict[str, Any]]]:
    """Load an epoch checkpoint of :func:`fit_sequences` into ``model`` and ``optimizer`` and
    restore the random generators; ``(epochs done, best loss, bad epochs, metrics lines)``."""
    state = load_checkpoint(checkpoint)
    if "optimizer" not in state or "rng" not in state:
        raise CheckpointError(
            f"{checkpoint}: not an epoch checkpoint of this training (no optimiser or generator "
            "state); start a new run with another --out"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    restore_rng(state["rng"])
    return int(state["epoch"]), float(state["best_loss"]), int(state["bad"]), state["metrics"]


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Sequence[LabelledSequence],
    settings: SequenceTraining,
    epoch: int,
    device: torch.device,
) -> tuple[float, float]:
    """One epoch over ``train`` in an order and with step choices drawn from ``(seed, epoch)``;
    ``(mean loss, accuracy)`` of its batches."""
    rng = np.random.default_rng([settings.seed, epoch])
    order = rng.permutation(len(train))
    model.train()
    total, correct = 0.0, 0
    for first in range(0, len(order), settings.batch_size):
        chosen = [train[i] for i in order[first : first + settings.batch_size]]
        steps = [settings.choose(rng, len(s.features)) for s in chosen]
        features, mask, labels = pad_batch(chosen, steps, device)
        logits = model(features, mask)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad)
        optimizer.step()
        total += float(loss.detach()) * len(chosen)
        correct += int((logits.argmax(dim=1) == labels).sum())
    return total / len(order), correct / len(order)


def fit_sequences(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Sequence[LabelledSequence],
    monitor: Sequence[LabelledSequence],
    settings: SequenceTraining,
    folder: Path,
    meta: dict[str, Any],
    device: torch.device,
    *,
    resume: bool = False,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model``; keep the best by ``monitor`` loss in ``folder/checkpoints/best.pt``.

    The model is left holding the best weights. ``folder/metrics.jsonl`` gets one line per
    epoch (train loss and accuracy, monitored loss and accuracy, seconds). After every epoch
    ``folder/checkpoints/last.pt`` holds what continuing needs: the weights, the optimiser, the
    early-stopping state, the metrics lines and the random generators (each epoch's order and
    step choices depend only on ``(seed, epoch)``), so that a run resumed from it ends
    bit-identical to an uninterrupted one.

    Args:
        resume: Continue from ``folder/checkpoints/last.pt`` (a finished run trains no more).
        extra: More entries of both checkpoints (e.g. the input width), saved as they are.

    Returns:
        The metrics lines.

    Raises:
        CheckpointError: if ``resume`` finds no epoch checkpoint of this training.
    """
    best = folder / "checkpoints" / "best.pt"
    last = best.with_name("last.pt")
    start, best_loss, bad = 0, float("inf"), 0
    metrics: list[dict[str, Any]] = []
    if resume:
        start, best_loss, bad, metrics = _resumed(last, model, optimizer)
    stopped = settings.patience is not None and bad >= settings.patience
    for epoch in range(start, 0 if stopped else settings.epochs):
        started = time.perf_counter()
        train_loss, train_accuracy = _train_epoch(model, optimizer, train, settings, epoch, device)
        outcome = score_sequences(model, monitor, device, settings.select)
        line = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": outcome.loss,
            "val_accuracy": outcome.accuracy,
            "seconds": round(time.perf_counter() - started, 3),
        }
        metrics.append(line)
        atomic_write_text(folder / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))
        weights = {**(extra or {}), "model": model.state_dict(), "epoch": epoch + 1}
        epoch_meta = {**meta, "epoch": epoch + 1, "metrics": line}
        if outcome.loss < best_loss:
            best_loss, bad = outcome.loss, 0
            save_checkpoint(best, weights, epoch_meta)
        else:
            bad += 1
        # Written after best.pt: a run killed in between redoes this epoch and its best.pt.
        progress = {"optimizer": optimizer.state_dict(), "rng": capture_rng(), "metrics": metrics}
        save_checkpoint(
            last, {**weights, **progress, "best_loss": best_loss, "bad": bad}, epoch_meta
        )
        if settings.patience is not None and bad >= settings.patience:
            break
    model.load_state_dict(load_checkpoint(best)["model"])
    return metrics
