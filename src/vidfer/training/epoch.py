"""One training epoch of a clip model: the epoch's loader, and its steps.

Each step: clips from the sampler, transformed, through the model into score maps, pooled over
time into video scores, cross-entropy, backward (averaged over the processes of a distributed
run) and an optimiser step every ``train.accumulate`` batches; the sampler learns from the
batch's clean-clip scores, computed before the step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from vidfer.config import RunConfig
from vidfer.data.dataset import ClipDataset, EpochDraws
from vidfer.device import ClipScorer, autocast, pin_memory
from vidfer.progress import track
from vidfer.training.distributed import Distributed
from vidfer.training.finetune import TrainMode
from vidfer.training.guards import loss_is_finite
from vidfer.training.resume import EpochProgress
from vidfer.training.sampler_sync import SamplerFeed

log = logging.getLogger(__name__)


@dataclass
class Trainee:
    """What the steps of an epoch work on.

    Attributes:
        scorer: The model and its pooling (clean scores, gradient clipping).
        forward: The training forward: ``scorer``, compiled and/or in DDP as configured.
        optimizer: The optimiser.
        scaler: Loss scaling (active for float16 autocast only).
        feed: Passes the clean-clip scores to the sampler (from every rank).
        place: This process's place in a distributed run.
        train_mode: Switches a module to training mode (frozen stages and BatchNorm layers
            stay in eval mode: :mod:`vidfer.training.finetune`).
    """

    scorer: ClipScorer
    forward: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    feed: SamplerFeed
    place: Distributed
    train_mode: TrainMode


class EpochLoader:
    """The training loader: its worker processes start once and serve every epoch.

    Each epoch the training process makes the draws of this rank's share of the epoch's order
    (:meth:`ClipDataset.draw`) and hands them to the workers with the items, so that workers
    need no copy of a learning sampler's state and are not started again at every epoch.

    Args:
        dataset: The training videos.
        config: The run config.
        place: This process's place in a distributed run.
        device: The device (memory is pinned only for CUDA).
    """

    def __init__(
        self, dataset: ClipDataset, config: RunConfig, place: Distributed, device: torch.device
    ) -> None:
        self.dataset = dataset
        self.config = config
        self.place = place
        self.batch_size = config.train.batch_size // place.world_size  # the global batch is shared
        self.draws = EpochDraws()
        workers = config.train.num_workers
        self.loader: DataLoader[Any] = DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=self.draws,
            num_workers=workers,
            persistent_workers=workers > 0,
            # The workers' base seed from a private generator: data loading never consumes the
            # global random state (dropout's).
            generator=torch.Generator().manual_seed(config.seed),
            pin_memory=pin_memory(device),
            timeout=config.train.loader_timeout_s if workers else 0,
        )

    def epoch(self, epoch: int, skip: int) -> DataLoader[Any]:
        """The loader of ``epoch`` (the dataset set to it) without its first ``skip`` batches
        (already trained before a resume)."""
        order_gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.dataset), generator=order_gen).tolist()
        mine = self.place.share(order, pad=True)[skip * self.batch_size :]
        if self.dataset.board is not None:
            self.dataset.board.reset()
        self.draws.draws = [self.dataset.draw(index) for index in mine]
        return self.loader


def clip_scores(forward: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Scores ``(B, n, K)`` of each clip of a batch of clips ``(B, n, C, L, H, W)``."""
    batch, n_clips = clips.shape[:2]
    flat = clips.flatten(0, 1)  # (B, n, C, L, H, W) -> (B*n, C, L, H, W)
    pooled = forward(flat)  # (B*n, K)
    return pooled.view(batch, n_clips, -1)  # (B*n, K) -> (B, n, K)


def clean_scores(trainee: Trainee, clean: torch.Tensor, config: RunConfig) -> torch.Tensor:
    """Scores ``(B, n, K)`` of the non-augmented clips, in eval mode and before the step."""
    scorer = trainee.scorer
    scorer.eval()
    with torch.no_grad(), autocast(clean.device, config.train.amp):
        scores = clip_scores(scorer, clean).float()
    trainee.train_mode(scorer)
    return scores


class Counts(Protocol):
    """Where training stands (the trainer's state): optimiser steps and the epoch's progress."""

    step: int
    progress: EpochProgress


def train_epoch(
    trainee: Trainee,
    loader: DataLoader[Any],
    config: RunConfig,
    device: torch.device,
    epoch: int,
    state: Counts,
    names: list[str],
    save_step: Callable[[], None],
) -> dict[str, float]:
    """Train the rest of an epoch (from ``state.progress``, both updated in place).

    Args:
        trainee: What the steps work on.
        loader: The epoch's loader (from :func:`epoch_loader`).
        config: The run config.
        device: The device.
        epoch: The epoch (from 0).
        state: Optimiser steps taken and the epoch's progress.
        names: Every training video's manifest path (for messages).
        save_step: Writes a mid-epoch checkpoint.

    Returns:
        The epoch's training metrics (of this rank's videos).
    """
    optimizer, scaler = trainee.optimizer, trainee.scaler
    trainee.train_mode(trainee.forward)
    progress = state.progress
    accumulate = config.train.accumulate
    every = config.train.checkpoint_every_steps
    optimizer.zero_grad(set_to_none=True)
    batches = progress.batches + len(loader)
    for batch in track(loader, total=len(loader), description=f"epoch {epoch + 1}"):
        index = progress.batches
        clips = batch.clips.to(device, non_blocking=True)
        labels = batch.label.to(device, non_blocking=True)
        clean = None
        if batch.clean.numel():
            clean_clips = batch.clean.to(device, non_blocking=True)
            clean = clean_scores(trainee, clean_clips, config).cpu().numpy()
        with autocast(device, config.train.amp):
            scores = clip_scores(trainee.forward, clips).mean(dim=1)  # (B, n, K) -> (B, K)
            loss = F.cross_entropy(scores.float(), labels)
        where = f"epoch {epoch + 1}, batch {index + 1} of {batches} (step {state.step + 1})"
        videos = [names[video] for video in batch.video.tolist()]
        log.debug("%s: %s", where, ", ".join(videos))
        finite = loss_is_finite(loss, config.train.on_nan, where, videos)
        # Every rank skips a batch together: DDP's backward waits for every rank.
        finite = trainee.place.all_true(finite)
        if finite:
            scaler.scale(loss / accumulate).backward()
        stepped = (index + 1) % accumulate == 0 or index + 1 == batches
        if stepped:
            if config.train.clip_grad is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(trainee.scorer.model.parameters(), config.train.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
        for row, video in enumerate(batch.video.tolist()):
            # A skipped batch's scores may be NaN: the sampler records the draw, learns nothing.
            logits = None if clean is None or not finite else clean[row]
            trainee.feed.observe(video, batch.starts[row].numpy(), logits, int(batch.label[row]))
        progress.batches += 1
        if finite:
            progress.loss_sum += float(loss.detach()) * len(labels)
            progress.correct += int((scores.argmax(dim=1) == labels).sum())
            progress.seen += len(labels)
        else:
            progress.skipped += 1
        # Mid-epoch checkpoints only between optimiser steps (no gradient is pending); the
        # epoch's end writes its own.
        if stepped and every is not None and state.step % every == 0 and index + 1 < batches:
            save_step()
    return progress.metrics()
