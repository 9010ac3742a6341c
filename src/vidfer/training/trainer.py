"""The training loop of a clip model: it knows nothing of the model or the sampler it runs.

Three parts: :func:`_setup` (data, model, optimiser, loader, resumed state), the epochs of
:func:`_train_epochs` (the epoch's steps of :mod:`vidfer.training.epoch`, then whole-video
validation, the epoch's metrics line, and an atomic checkpoint that holds everything needed to
continue exactly: model, optimiser, pooling, sampler state, early-stopping state and the global
random states) and :func:`_finish` (learning curves, the best model on the held-out splits, then
the after-training steps the caller registers, e.g. sampling or attention maps). Under torchrun
the same loop runs in every process (:mod:`vidfer.training.distributed`); rank 0 writes the run
folder.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidfer.config import RunConfig, config_to_dict
from vidfer.data.dataset import ClipDataset, VideoItem
from vidfer.data.inflight import LoaderBoard
from vidfer.data.prepared import PreparedDataset, load_dataset
from vidfer.data.sampler_zoo import sampler_from_config
from vidfer.data.samplers import ClipSampler
from vidfer.data.transforms import build_clip_transform
from vidfer.device import ClipScorer, grad_scaler, seed_everything
from vidfer.errors import CheckpointError, ConfigError
from vidfer.evaluation.evaluate import ClipEvaluator, write_evaluation
from vidfer.io.atomic import atomic_write_text
from vidfer.io.checkpoint import load_checkpoint, save_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.models import build_pooling, model_from_config
from vidfer.models.base import VideoModel
from vidfer.models.pooling import TemporalPooling
from vidfer.models.trained import load_run_model
from vidfer.training.distributed import (
    Distributed,
    evaluate_shared,
    parallel,
    prepare_share,
    start,
    stop,
    sync_buffers,
)
from vidfer.training.epoch import EpochLoader, Trainee, train_epoch
from vidfer.training.finetune import prepare_finetune
from vidfer.training.guards import check_epoch, loader_failures
from vidfer.training.optim import build_optimizer, lr_factor, set_epoch_lr
from vidfer.training.resume import EpochProgress, capture_rng, restore_rng
from vidfer.training.sampler_sync import SamplerFeed, write_distributed
from vidfer.viz.plots import plot_learning_curves
from vidfer.viz.tensorboard import TensorBoard

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """What changes from epoch to epoch besides the weights."""

    epoch: int = 0  # epochs finished
    best_val_loss: float = float("inf")
    bad_epochs: int = 0
    stopped_early: bool = False
    step: int = 0  # optimiser steps taken
    progress: EpochProgress = field(default_factory=EpochProgress)  # inside the current epoch

    def observe(self, val_loss: float | None, patience: int | None) -> bool:
        """Record a finished epoch's validation loss; True if it is the best so far.

        Training stops early once ``patience`` epochs in a row did not improve on the best.
        Without a validation loss nothing is recorded and training never stops early.
        """
        if val_loss is None:
            return False
        improved = val_loss < self.best_val_loss
        if improved:
            self.best_val_loss, self.bad_epochs = val_loss, 0
        else:
            self.bad_epochs += 1
        self.stopped_early = patience is not None and self.bad_epochs >= patience
        return improved


@dataclass(frozen=True)
class TrainResult:
    """Where the run is and how it ended."""

    run: RunDir
    epochs: int
    stopped_early: bool
    metrics: list[dict[str, Any]]


def _checkpoint_state(trainee: Trainee, state: TrainState) -> dict[str, Any]:
    """The checkpoint's contents (on every rank: the random states are gathered)."""
    place = trainee.place
    ranks = {}
    if place.active:  # what differs between the processes mid-epoch, gathered (rank order)
        buffers = {
            name: tensor.detach().cpu().clone()
            for name, tensor in trainee.scorer.model.state_dict().items()
            if not tensor.is_floating_point() or "running" in name
        }
        ranks = {
            "rng_ranks": place.gather(capture_rng()),
            "progress_ranks": place.gather(state.progress.state_dict()),
            "held_ranks": place.gather(trainee.feed.held_state()),
            "buffers_ranks": place.gather(buffers),
        }
    return {
        "model": trainee.scorer.model.state_dict(),
        "pooling": trainee.scorer.pooling.state_dict(),
        "optimizer": trainee.optimizer.state_dict(),
        "scaler": trainee.scaler.state_dict(),
        "sampler": trainee.feed.sampler.state_dict(),
        "epoch": state.epoch,
        "best_val_loss": state.best_val_loss,
        "bad_epochs": state.bad_epochs,
        "stopped_early": state.stopped_early,
        "step": state.step,
        "progress": state.progress.state_dict(),
        "rng": capture_rng(),
        **ranks,
    }


def _restore(path: Path, trainee: Trainee) -> TrainState:
    saved = load_checkpoint(path)
    place = trainee.place
    trainee.scorer.model.load_state_dict(saved["model"])
    trainee.scorer.pooling.load_state_dict(saved["pooling"])
    trainee.optimizer.load_state_dict(saved["optimizer"])
    if saved.get("scaler"):
        trainee.scaler.load_state_dict(saved["scaler"])
    trainee.feed.sampler.load_state_dict(saved["sampler"])
    ranks = saved.get("rng_ranks") or ([saved["rng"]] if "rng" in saved else [])
    if not ranks:  # checkpoints written before every generator was kept: torch's state only
        torch.set_rng_state(saved["torch_rng"])
    elif len(ranks) != place.world_size:
        log.warning(
            "%s was trained on %d process(es), resumed on %d: the dropout draws differ from an "
            "uninterrupted run",
            path,
            len(ranks),
            place.world_size,
        )
    else:
        restore_rng(ranks[place.rank])
    progress = saved.get("progress", {})
    if place.active and len(saved.get("progress_ranks", [])) == place.world_size:
        # Mid-epoch: this rank's own running sums, held observations and BatchNorm statistics.
        progress = saved["progress_ranks"][place.rank]
        trainee.feed.load_held(saved["held_ranks"][place.rank])
        trainee.scorer.model.load_state_dict(saved["buffers_ranks"][place.rank], strict=False)
    return TrainState(
        epoch=int(saved["epoch"]),
        best_val_loss=float(saved["best_val_loss"]),
        bad_epochs=int(saved["bad_epochs"]),
        stopped_early=bool(saved["stopped_early"]),
        step=int(saved.get("step", 0)),
        progress=EpochProgress.from_state(progress),
    )


def _read_metrics(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [line for line in lines if line["epoch"] <= upto_epoch]


def _write_metrics(path: Path, metrics: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(line, sort_keys=True) + "\n" for line in metrics))


@dataclass(frozen=True)
class TrainedRun:
    """What an after-training step sees, on the main process, once the run is evaluated.

    Attributes:
        run: The run folder.
        config: The run config.
        sampler: The training clip sampler, in its final state.
        data: The prepared dataset.
        train_items: The training videos.
        best: The best model (eval mode), or None when the manifest has no held-out split.
        device: Where the model runs.
    """

    run: RunDir
    config: RunConfig
    sampler: ClipSampler
    data: PreparedDataset
    train_items: list[VideoItem]
    best: VideoModel | None
    device: torch.device


AfterTraining = Callable[[TrainedRun], None]
"""A step run once training ended (e.g. a plot of what the sampler or the attention learned)."""


@dataclass
class _Setup:
    """Everything the epochs work with."""

    config: RunConfig
    run: RunDir
    place: Distributed
    device: torch.device
    data: PreparedDataset
    classes: list[str]
    train_items: list[VideoItem]
    val_items: list[VideoItem]
    model: VideoModel
    pooling: TemporalPooling
    dataset: ClipDataset
    board: LoaderBoard | None
    trainee: Trainee
    loaders: EpochLoader
    tensorboard: TensorBoard | None  # the main process's event writer (train.tensorboard)


def _setup(config: RunConfig, run: RunDir) -> _Setup:
    """Start the processes, load the data and build the model, optimiser and loader."""
    place, device = start(config)
    seed_everything(config.seed + place.rank, deterministic=config.train.deterministic)
    prepare_share(config.data, place)  # several processes: each decodes its share first
    data = load_dataset(config.data, rejects_path=run.folder / "rejects.jsonl")
    classes = list(data.manifest.classes)
    train_items, val_items = data.split("train"), data.split("val")
    if not train_items:
        raise ConfigError(f"{config.data.manifest}: no usable video in the train split")
    if not data.manifest.has_splits():
        val_items = []
    if place.is_main:
        run.initialise(
            config,
            classes,
            train=[item.row.video_id for item in train_items],
            stopping=[item.row.video_id for item in val_items],
        )

    model = model_from_config(config.model, num_classes=len(classes))
    pooling = build_pooling(config.pooling.name, num_classes=len(classes), **config.pooling.params)
    train_mode = prepare_finetune(model, config.optim)  # before DDP sees the parameters
    model.to(device)
    pooling.to(device)
    scorer = ClipScorer(model, pooling, channels_last=config.train.channels_last)
    forward = parallel(scorer, place, device)
    if config.train.compile:
        forward = torch.compile(forward)  # type: ignore[assignment]
    sampler = sampler_from_config(config.sampler)
    board = LoaderBoard(config.train.num_workers) if config.train.num_workers else None
    dataset = ClipDataset(
        train_items,
        data.store,
        sampler,
        build_clip_transform(config.transforms, train=True),
        config.seed,
        clean_transform=build_clip_transform(config.transforms, train=False),
        board=board,
    )
    optimizer = build_optimizer(model, config.optim, extra_head=list(pooling.parameters()))
    trainee = Trainee(
        scorer,
        forward,
        optimizer,
        grad_scaler(device, config.train.amp),
        SamplerFeed(sampler, place),
        place,
        train_mode,
    )
    loaders = EpochLoader(dataset, config, place, device)
    tensorboard = TensorBoard(run.folder) if config.train.tensorboard and place.is_main else None
    return _Setup(
        config, run, place, device, data, classes, train_items, val_items, model, pooling,
        dataset, board, trainee, loaders, tensorboard,
    )  # fmt: skip


def _evaluator(setup: _Setup, model: VideoModel, pooling: TemporalPooling) -> ClipEvaluator:
    return ClipEvaluator.of(model, pooling, setup.config, setup.device)


def _train_epochs(setup: _Setup, state: TrainState, metrics: list[dict[str, Any]]) -> None:
    """Train until the last epoch or early stopping, checkpointing after every epoch."""
    config, run, place, trainee = setup.config, setup.run, setup.place, setup.trainee
    names = [item.row.rel_path for item in setup.train_items]

    def save_step() -> None:
        meta = {
            "epoch": state.epoch,
            "batch": state.progress.batches,
            "step": state.step,
            "classes": setup.classes,
        }
        checkpoint = _checkpoint_state(trainee, state)  # every rank: it gathers their states
        if place.is_main:
            save_checkpoint(run.checkpoint("last"), checkpoint, meta)

    while state.epoch < config.train.epochs and not state.stopped_early:
        epoch = state.epoch
        started = time.perf_counter()
        factor = lr_factor(epoch, config.train.epochs, config.optim)
        set_epoch_lr(trainee.optimizer, factor)
        setup.dataset.set_epoch(epoch)
        line: dict[str, Any] = {"epoch": epoch + 1, "lr": config.optim.lr * factor}
        loader = setup.loaders.epoch(epoch, state.progress.batches)
        with loader_failures(setup.board, names.__getitem__):
            trained = train_epoch(
                trainee, loader, config, setup.device, epoch, state, names, save_step
            )
        trainee.feed.end_epoch(len(setup.dataset))
        sync_buffers(setup.model, place)  # every rank holds the BatchNorm statistics saved
        line.update(place.mean(trained))
        line["train_seconds"] = round(time.perf_counter() - started, 3)
        if setup.val_items:
            evaluator = _evaluator(setup, setup.model, setup.pooling)
            outcome = evaluate_shared(evaluator, setup.val_items, setup.data.store, place)
            line.update({"val_loss": outcome.loss, "val_accuracy": outcome.accuracy})
        check_epoch(state.progress, line.get("val_loss"), epoch)
        line["seconds"] = round(time.perf_counter() - started, 3)
        state.epoch, state.progress = epoch + 1, EpochProgress()
        improved = state.observe(line.get("val_loss"), config.train.patience)
        checkpoint = _checkpoint_state(trainee, state)
        meta = {"epoch": state.epoch, "step": state.step, "metrics": line, "classes": setup.classes}
        metrics.append(line)
        if place.is_main:
            if improved:
                save_checkpoint(run.checkpoint("best"), checkpoint, meta)
            save_checkpoint(run.checkpoint("last"), checkpoint, meta)
            _write_metrics(run.metrics_path, metrics)
            if setup.tensorboard is not None:
                setup.tensorboard.epoch(line)
        log.info(
            "epoch %d: %s",
            state.epoch,
            ", ".join(f"{k}={v:.4g}" for k, v in line.items() if k != "epoch"),
        )


def _finish(setup: _Setup, metrics: list[dict[str, Any]], after: Sequence[AfterTraining]) -> None:
    """Curves, the best model on every held-out split, then the after-training steps."""
    run, place, data = setup.run, setup.place, setup.data
    sampler = setup.trainee.feed.sampler
    if place.is_main:
        plot_learning_curves(metrics, run.folder / "curves.png")
    write_distributed(run.folder, place, sampler)
    place.barrier()  # best.pt is written
    best: VideoModel | None = None
    if data.manifest.has_splits():
        # The best checkpoint (by validation loss), loaded once, on every held-out split.
        best, best_pooling = load_run_model(run, setup.device)
        evaluator = _evaluator(setup, best, best_pooling)
        for split in ("val", "test"):
            items = data.split(split)
            if items:
                outcome = evaluate_shared(evaluator, items, data.store, place)
                if place.is_main:
                    write_evaluation(run.folder / f"eval_{split}", outcome, setup.classes)
    if place.is_main:
        done = TrainedRun(run, setup.config, sampler, data, setup.train_items, best, setup.device)
        for step in after:
            step(done)
    if setup.tensorboard is not None:
        epochs = len(metrics)
        for split in ("val", "test"):
            confusion = run.folder / f"eval_{split}" / "confusion.png"
            setup.tensorboard.image(f"confusion/{split}", confusion, epochs)
        setup.tensorboard.image("sampling_maps", run.folder / "sampling_maps.png", epochs)
        setup.tensorboard.close()


def check_run_folder(config: RunConfig, run: RunDir, *, resume: bool) -> None:
    """Refuse to train over an existing run, or to resume a run with another config.

    Raises:
        ConfigError: on a config/run mismatch, or a folder that already holds a run.
        CheckpointError: if ``resume`` is asked without a checkpoint.
    """
    if resume:
        # A staged kind may have finished a stage (checkpoints/autoencoder.pt...) but no epoch.
        if not any(run.checkpoint("last").parent.glob("*.pt")):
            raise CheckpointError(f"{run.folder}: nothing to resume (no checkpoints/last.pt)")
        if config_to_dict(run.config()) != config_to_dict(config):
            raise ConfigError(
                f"{run.folder}: the config differs from the run's config.yaml; "
                "resume with the run's own config ('vidfer train --resume RUN')"
            )
    elif run.checkpoint("last").exists():
        raise ConfigError(
            f"{run.folder}: already holds a run; pass --resume to continue it "
            "or choose another --out folder"
        )


def train_clip_model(
    config: RunConfig,
    run: RunDir,
    *,
    resume: bool = False,
    after: Sequence[AfterTraining] = (),
) -> TrainResult:
    """Train a clip model as configured, writing everything into the run folder.

    Args:
        config: The run config (a clip run).
        run: The run folder (checked with :func:`check_run_folder` by the caller).
        resume: Continue from ``checkpoints/last.pt``.
        after: Steps run on the main process once the best model was evaluated.

    Raises:
        ConfigError: if there is no training video.
    """
    setup = _setup(config, run)
    state = TrainState()
    if resume:
        state = _restore(run.checkpoint("last"), setup.trainee)
        log.info(
            "resuming %s at epoch %d, batch %d (step %d)",
            run.folder,
            state.epoch + 1,
            state.progress.batches + 1,
            state.step + 1,
        )
    metrics = _read_metrics(run.metrics_path, state.epoch)
    _train_epochs(setup, state, metrics)
    del setup.loaders  # stops the loader workers
    _finish(setup, metrics, after)
    stop()
    return TrainResult(
        run=run, epochs=state.epoch, stopped_early=state.stopped_early, metrics=metrics
    )
