"""Optimiser groups, learning-rate schedules and early stopping."""

from __future__ import annotations

import math

import pytest
import torch

from vidfer.config import OptimConfig
from vidfer.models import build_model
from vidfer.training.optim import build_optimizer, lr_factor, set_epoch_lr
from vidfer.training.trainer import TrainState


def test_backbone_and_head_have_their_own_settings():
    model = build_model("resnet3d_18", num_classes=3, width=0.125)
    config = OptimConfig(
        name="sgd", lr=0.01, head_lr=0.1, weight_decay=0.3, head_weight_decay=0.2, momentum=0.9
    )
    extra = torch.nn.Parameter(torch.zeros(3))
    optimizer = build_optimizer(model, config, extra_head=[extra])
    assert isinstance(optimizer, torch.optim.SGD)
    backbone, head = optimizer.param_groups
    assert (backbone["lr"], backbone["weight_decay"]) == (0.01, 0.3)
    assert (head["lr"], head["weight_decay"], head["momentum"]) == (0.1, 0.2, 0.9)
    count = sum(len(group["params"]) for group in optimizer.param_groups)
    assert count == len(list(model.parameters())) + 1
    assert any(p is extra for p in head["params"])
    set_epoch_lr(optimizer, 0.5)
    assert (backbone["lr"], head["lr"]) == (0.005, 0.05)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (OptimConfig(schedule="none"), [1, 1, 1, 1]),
        (OptimConfig(schedule="step", step_size=2, gamma=0.1), [1, 1, 0.1, 0.1]),
        (
            OptimConfig(schedule="cosine"),
            [1, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2],
        ),
        (OptimConfig(schedule="none", warmup_epochs=2), [1 / 3, 2 / 3, 1, 1]),
    ],
)
def test_schedules(config, expected):
    assert [lr_factor(epoch, 4, config) for epoch in range(4)] == pytest.approx(expected)


def test_early_stopping_after_patience_epochs_without_improvement():
    state = TrainState()
    seen = [state.observe(loss, patience=2) for loss in (1.0, 0.8, 0.9, 0.8)]
    assert seen == [True, True, False, False]
    assert state.stopped_early and state.best_val_loss == 0.8
    again = TrainState()
    assert [again.observe(loss, 2) for loss in (1.0, 1.1, 0.5)] == [True, False, True]
    assert not again.stopped_early and again.bad_epochs == 0


def test_no_validation_never_stops_early():
    state = TrainState()
    assert not state.observe(None, patience=1) and not state.stopped_early
