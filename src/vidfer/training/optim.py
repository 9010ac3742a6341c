"""Optimisers with separate backbone/head settings, and the epoch learning-rate schedule."""

from __future__ import annotations

import math
from typing import Any

import torch

from vidfer.config import OptimConfig
from vidfer.models.base import VideoModel
from vidfer.training.finetune import backbone_groups


def build_optimizer(
    model: VideoModel, config: OptimConfig, extra_head: list[torch.nn.Parameter] | None = None
) -> torch.optim.Optimizer:
    """AdamW or SGD with momentum; the head has its own learning rate and weight decay.

    The backbone's groups come first (one, or one per stage with ``optim.layer_decay``; frozen
    stages left out: :func:`~vidfer.training.finetune.backbone_groups`), the head's group last.
    Every group keeps its learning rate before the schedule as ``base_lr``.

    Args:
        model: The model (its ``head_parameters`` form the head group).
        config: The optimiser section.
        extra_head: More parameters trained like the head (e.g. a learned pooling).

    Raises:
        ConfigError: on an unknown stage name in ``optim.freeze``.
    """
    head_lr = config.head_lr if config.head_lr is not None else config.lr
    head_wd = (
        config.head_weight_decay if config.head_weight_decay is not None else config.weight_decay
    )
    groups: list[dict[str, Any]] = [
        {"params": params, "lr": lr, "weight_decay": config.weight_decay, "base_lr": lr}
        for params, lr in backbone_groups(model, config)
    ]
    groups.append(
        {
            "params": model.head_parameters() + list(extra_head or []),
            "lr": head_lr,
            "weight_decay": head_wd,
            "base_lr": head_lr,
        }
    )
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr)


def lr_factor(epoch: int, epochs: int, config: OptimConfig) -> float:
    """Multiplier of the base learning rates during ``epoch`` (0-based).

    Linear warm-up over ``warmup_epochs``, then ``cosine`` decay to 0 at the last epoch, ``step``
    decay by ``gamma`` every ``step_size`` epochs, or constant (``none``).
    """
    if epoch < config.warmup_epochs:
        return (epoch + 1) / (config.warmup_epochs + 1)
    if config.schedule == "cosine":
        span = max(epochs - config.warmup_epochs, 1)
        return 0.5 * (1 + math.cos(math.pi * (epoch - config.warmup_epochs) / span))
    if config.schedule == "step":
        return config.gamma ** ((epoch - config.warmup_epochs) // config.step_size)
    return 1.0


def set_epoch_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every group's learning rate to ``base_lr * factor``."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
