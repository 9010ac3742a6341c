"""Training frame CNNs on still images: ``vidfer train-frames``.

A frame CNN (:mod:`vidfer.models.frame_cnns`) learns to classify single images of an
:class:`~vidfer.data.images.ImageSet` (a folder-per-class tree, the FER2013 CSV, or the frames
of a prepared video dataset), from scratch, from its pretrained weights, or fine-tuned from
another frame run. Cross-entropy, SGD+momentum or AdamW, early stopping on the validation loss,
one seed for everything.

Run folder::

    OUT/settings.json          what was trained on what (model, parameters, source, image counts)
    OUT/classes.json           class names in output order
    OUT/metrics.jsonl          one line per epoch: train/val loss and accuracy, seconds
    OUT/checkpoints/best.pt    the weights with the best validation loss or accuracy (+ best.json)
    OUT/checkpoints/last.pt    after every epoch: the weights, the optimiser, early stopping's
                               state, the metrics and the random generators, from which
                               ``--resume`` continues exactly (+ last.json)
    OUT/curves.png             learning curves
    OUT/eval_<split>/          the best weights on val and test images: predictions.csv
                               (one row per image), metrics.json, confusion.csv, confusion.png
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vidfer.config.steps import FrameTrainSettings
from vidfer.data.image_dataset import Augmentation, ImageDataset
from vidfer.data.images import ImageSet, load_images
from vidfer.device import resolve_device, seed_everything
from vidfer.errors import CheckpointError, ConfigError
from vidfer.evaluation.evaluate import EvalOutcome, write_evaluation
from vidfer.io.atomic import atomic_write_json, atomic_write_text
from vidfer.io.checkpoint import load_checkpoint, save_checkpoint
from vidfer.models.frame_cnns import (
    FrameCNN,
    build_frame_cnn,
    check_frame_cnn_params,
    frame_cnn_params,
)
from vidfer.models.frame_runs import RUN_KIND, load_frame_run, read_frame_settings
from vidfer.progress import track
from vidfer.training.distributed import refuse_under_torchrun
from vidfer.training.resume import capture_rng, record_settings, restore_rng
from vidfer.viz.plots import plot_learning_curves

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameTrainResult:
    """How a frame run ended.

    Attributes:
        folder: The run folder.
        epochs: Epochs trained.
        stopped_early: Whether early stopping ended training.
        metrics: One dict per epoch (the lines of ``metrics.jsonl``).
        evaluations: Metrics of the best weights per evaluated split (``val``, ``test``).
    """

    folder: Path
    epochs: int
    stopped_early: bool
    metrics: list[dict[str, Any]]
    evaluations: dict[str, dict[str, Any]]


def _initial_model(
    settings: FrameTrainSettings, classes: tuple[str, ...]
) -> tuple[FrameCNN, dict[str, Any]]:
    """The model to start from and its effective parameters."""
    if settings.init is None:
        model = build_frame_cnn(settings.model, len(classes), **settings.params)
        return model, {**settings.params, **model.architecture_params()}
    if settings.init == "pretrained":
        if "pretrained" not in frame_cnn_params(settings.model):
            raise ConfigError(
                f"--init pretrained: {settings.model} has no pretrained weights obtainable "
                "offline (mini_xception has); load a state dict with --param weights=PATH or "
                "fine-tune a frame run with --init RUN"
            )
        params = {**settings.params, "pretrained": True}
        return build_frame_cnn(settings.model, len(classes), **params), params
    base = read_frame_settings(Path(settings.init))
    if base["model"] != settings.model:
        raise ConfigError(
            f"--init {settings.init}: that run trained {base['model']}, not {settings.model}; "
            f"use --model {base['model']}"
        )
    if settings.params:
        raise ConfigError(
            f"--init {settings.init}: the model's parameters come from that run; drop --param"
        )
    model, base_classes = load_frame_run(settings.init)
    if tuple(base_classes) != classes:
        model.replace_classifier(len(classes))
    return model, base["params"]


@torch.no_grad()
def evaluate_images(
    model: FrameCNN, dataset: ImageDataset, device: torch.device, batch_size: int
) -> EvalOutcome:
    """Loss, class probabilities and labels of every image of ``dataset`` (in order)."""
    model.eval()
    logits, labels = [], []
    for inputs, targets in DataLoader(dataset, batch_size=batch_size):
        logits.append(model(inputs.to(device)).float().cpu())  # (b, K)
        labels.append(targets)
    scores, truth = torch.cat(logits), torch.cat(labels)  # (N, K), (N,)
    return EvalOutcome(
        loss=float(F.cross_entropy(scores, truth)),
        probabilities=scores.softmax(dim=1).numpy(),
        labels=truth.numpy(),
        video_ids=[dataset.images.ids[i] for i in dataset.indices],
    )


def _optimizer(model: FrameCNN, settings: FrameTrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
        )
    return torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


def _train_epoch(
    model: FrameCNN,
    loader: DataLoader[tuple[torch.Tensor, int]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    description: str,
) -> tuple[float, float]:
    """One pass over the training images; mean loss and accuracy."""
    model.train()
    total, correct, count = 0.0, 0, 0
    for inputs, targets in track(loader, total=len(loader), description=description):
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs)  # (b, K)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(targets)
        correct += int((logits.argmax(dim=1) == targets).sum())
        count += len(targets)
    return total / count, correct / count


def _datasets(
    images: ImageSet, model: FrameCNN, settings: FrameTrainSettings
) -> dict[str, ImageDataset]:
    """The train (augmented), val and test datasets."""
    return {
        split: ImageDataset(
            images,
            images.indices(split),
            model.prepare,
            model.input_size,
            Augmentation(settings.crop_scale, settings.flip, settings.rotation)
            if split == "train"
            else None,
        )
        for split in ("train", "val", "test")
    }


@dataclass(frozen=True)
class _Run:
    """A frame run ready to train.

    Attributes:
        folder: The run folder.
        images: The images it trains on.
        model: The model, on ``device``.
        device: Where it trains.
        optimizer: The optimiser of the model's parameters.
        data: The train (augmented), val and test datasets.
        resumed: Whether training continues from ``checkpoints/last.pt``.
    """

    folder: Path
    images: ImageSet
    model: FrameCNN
    device: torch.device
    optimizer: torch.optim.Optimizer
    data: dict[str, ImageDataset]
    resumed: bool


def _start_run(
    source: str | Path, folder: Path, settings: FrameTrainSettings, *, resume: bool
) -> _Run:
    """Check the settings, load the images, build the model and write settings.json and
    classes.json (the run exists from then on); with ``resume``, check them against the run's."""
    check_frame_cnn_params(settings.model, settings.params)
    images = load_images(
        source, val_fraction=settings.val_fraction, seed=settings.seed, every=settings.every
    )
    counts = images.counts()
    if not counts["val"]:
        raise ConfigError(f"{source}: no validation images; set val_fraction > 0")
    seed_everything(settings.seed, deterministic=True)
    model, params = _initial_model(settings, images.classes)
    device = resolve_device(settings.device)
    model.to(device)
    optimizer = _optimizer(model, settings)
    data = _datasets(images, model, settings)

    recorded = {
        **settings.model_dump(mode="json"),
        "kind": RUN_KIND,
        "params": params,
        "source": str(Path(source).resolve()),
        "source_kind": images.kind,
        "images": counts,
    }
    resumed = record_settings(folder, recorded, resume=resume)
    atomic_write_json(folder / "classes.json", list(images.classes))
    log.info("%s: %s images, classes %s", source, counts, list(images.classes))
    return _Run(folder, images, model, device, optimizer, data, resumed)


def _run_epoch(run: _Run, settings: FrameTrainSettings, epoch: int) -> tuple[dict[str, Any], float]:
    """Train one epoch and score the validation images.

    Returns:
        The epoch's line of metrics.jsonl and its monitored value as "higher is better" (minus
        the validation loss, or the validation accuracy).
    """
    start = time.perf_counter()
    order = torch.Generator().manual_seed(settings.seed * 1_000_003 + epoch)
    loader = DataLoader(run.data["train"], settings.batch_size, shuffle=True, generator=order)
    train_loss, train_accuracy = _train_epoch(
        run.model, loader, run.optimizer, run.device, f"epoch {epoch}"
    )
    val = evaluate_images(run.model, run.data["val"], run.device, settings.batch_size)
    line = {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "val_loss": val.loss,
        "val_accuracy": val.accuracy,
        "seconds": time.perf_counter() - start,
    }
    return line, val.accuracy if settings.monitor == "accuracy" else -val.loss


def _resumed(run: _Run) -> tuple[int, float, int, list[dict[str, Any]]]:
    """Load ``checkpoints/last.pt`` into the run's model and optimiser and restore the random
    generators; ``(epochs done, best score, bad epochs, metrics lines)``."""
    path = run.folder / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    if "rng" not in state:
        raise CheckpointError(
            f"{path}: written by a version without exact resume (no generator state); "
            "train again into another --out"
        )
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    restore_rng(state["rng"])
    return int(state["epoch"]), float(state["best"]), int(state["bad"]), state["metrics"]


def _fit(run: _Run, settings: FrameTrainSettings) -> tuple[list[dict[str, Any]], bool]:
    """Train until ``settings.epochs`` or early stopping, saving metrics and checkpoints.

    Each epoch's order is seeded by ``(seed, epoch)`` and its augmentation draws come from
    torch's global generator, saved in ``last.pt`` with everything else that changes between
    epochs: a resumed run ends bit-identical to an uninterrupted one.

    Returns:
        The metrics of every epoch and whether early stopping ended training.
    """
    checkpoints = run.folder / "checkpoints"
    done, best, bad, metrics = _resumed(run) if run.resumed else (0, -float("inf"), 0, [])
    for epoch in range(done + 1, settings.epochs + 1):
        if bad >= settings.patience:
            break
        line, score = _run_epoch(run, settings, epoch)
        metrics.append(line)
        log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in line.items()})
        text = "".join(json.dumps(m) + "\n" for m in metrics)
        atomic_write_text(run.folder / "metrics.jsonl", text)
        meta = {"epoch": epoch, "metrics": line, "classes": list(run.images.classes)}
        weights = {"model": run.model.state_dict(), "epoch": epoch}
        if score > best:
            best, bad = score, 0
            # The optimiser state only matters to continue training: not in best.pt.
            save_checkpoint(checkpoints / "best.pt", weights, meta)
        else:
            bad += 1
        # Written after best.pt: a run killed in between redoes this epoch and its best.pt.
        progress = {"optimizer": run.optimizer.state_dict(), "rng": capture_rng(), "best": best}
        save_checkpoint(
            checkpoints / "last.pt", {**weights, **progress, "bad": bad, "metrics": metrics}, meta
        )
    return metrics, bad >= settings.patience


def _evaluate_best(run: _Run, batch_size: int) -> dict[str, dict[str, Any]]:
    """Load the best weights and write their evaluation of the val and test images.

    Returns:
        The metrics per evaluated split (a split without images is skipped).
    """
    run.model.load_state_dict(load_checkpoint(run.folder / "checkpoints" / "best.pt")["model"])
    evaluations = {}
    for split in ("val", "test"):
        if len(run.data[split]):
            outcome = evaluate_images(run.model, run.data[split], run.device, batch_size)
            evaluations[split] = write_evaluation(
                run.folder / f"eval_{split}", outcome, run.images.classes
            )
    return evaluations


def train_frames(
    source: str | Path,
    out: str | Path,
    settings: FrameTrainSettings,
    *,
    resume: bool = False,
) -> FrameTrainResult:
    """Train a frame CNN on the images of ``source``; writes the run folder ``out``.

    Args:
        source: A folder-per-class tree, a FER2013 CSV or a run config YAML (its prepared
            videos' frames); see :func:`vidfer.data.images.load_images`.
        out: The run folder to create (or to continue, with ``resume``).
        settings: What to train and how.
        resume: Continue an interrupted run of ``out`` from its ``checkpoints/last.pt`` (same
            source and settings); it ends bit-identical to an uninterrupted run.

    Returns:
        How training ended, with the val and test metrics of the best weights.

    Raises:
        ConfigError: on invalid settings, an existing run in ``out`` (without ``resume``) or
            one made with other settings, a source without training or validation images, or
            several processes (torchrun).
        ManifestError: on a bad FER2013 row.
        CheckpointError: if ``init`` is not a usable frame run, or ``resume`` finds no
            checkpoint in ``out``.
    """
    refuse_under_torchrun("train-frames")
    run = _start_run(source, Path(out), settings, resume=resume)
    metrics, stopped_early = _fit(run, settings)
    plot_learning_curves(metrics, run.folder / "curves.png")
    evaluations = _evaluate_best(run, settings.batch_size)
    return FrameTrainResult(run.folder, len(metrics), stopped_early, metrics, evaluations)


def predict_images(model: FrameCNN, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities ``(T, K)`` of uint8 RGB frames ``(T, H, W, 3)`` (eval mode, no grad)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for first in range(0, len(frames), batch_size):
            x = model.prepare(frames[first : first + batch_size]).to(device)  # (b, C, S, S)
            out.append(model(x).softmax(dim=1).float().cpu().numpy())
    return np.concatenate(out)
