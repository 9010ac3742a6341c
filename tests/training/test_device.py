"""The GPU path's switches, exercised on the CPU: autocast (bf16, fp16 with loss scaling),
channels_last_3d, torch.compile, pinned memory only for CUDA."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from vidfer.config import TrainConfig, load_config
from vidfer.device import (
    ClipScorer,
    amp_dtype,
    autocast,
    grad_scaler,
    pin_memory,
)
from vidfer.models import build_model, build_pooling
from vidfer.models.heads import ConvHead
from vidfer.pipelines import train

CPU = torch.device("cpu")


def _scorer(channels_last: bool = False) -> ClipScorer:
    torch.manual_seed(0)
    model = build_model("resnet3d_18", num_classes=3, width=0.125)
    return ClipScorer(model, build_pooling("avg", num_classes=3), channels_last=channels_last)


def test_amp_modes_and_the_unchanged_cpu_default():
    assert TrainConfig().amp == "auto"
    assert TrainConfig(amp=True).amp == "auto" and TrainConfig(amp=False).amp == "off"
    assert amp_dtype(CPU, "auto") is None and amp_dtype(CPU, "off") is None
    assert amp_dtype(CPU, "bf16") is torch.bfloat16 and amp_dtype(CPU, "fp16") is torch.float16
    assert amp_dtype(torch.device("cuda"), "off") is None
    x = torch.randn(8, 8)
    with autocast(CPU, "auto"):  # the CPU default: float32, bit for bit
        assert torch.equal(x @ x, torch.mm(x, x)) and (x @ x).dtype == torch.float32
    assert not grad_scaler(CPU, "auto").is_enabled()
    assert not grad_scaler(CPU, "bf16").is_enabled() and grad_scaler(CPU, "fp16").is_enabled()
    assert not pin_memory(CPU) and pin_memory(torch.device("cuda", 0))


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_a_mixed_precision_step_on_the_cpu(mode):
    scorer = _scorer()
    optimizer = torch.optim.SGD(scorer.parameters(), lr=0.1)
    scaler = grad_scaler(CPU, mode)
    before = [p.detach().clone() for p in scorer.parameters()]
    clips, labels = torch.randn(2, 3, 8, 16, 16), torch.tensor([0, 2])
    with autocast(CPU, mode):
        scores = scorer(clips)
        loss = F.cross_entropy(scores.float(), labels)
    assert scores.dtype == amp_dtype(CPU, mode)  # the forward really ran in low precision
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert torch.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in scorer.parameters())  # float32 master weights
    assert any(not torch.equal(a, b) for a, b in zip(before, scorer.parameters(), strict=True))


def test_channels_last_converts_weights_and_clips_without_changing_scores():
    clips = torch.randn(2, 3, 8, 16, 16)
    plain = _scorer().eval()
    converted = _scorer(channels_last=True).eval()
    conv = converted.model.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        assert torch.allclose(converted(clips), plain(clips), atol=1e-5)


@pytest.mark.slow
def test_compiled_forward_equals_eager_on_a_tiny_model():
    torch.manual_seed(0)

    class Tiny(nn.Module):  # a one-conv video model: compiling it takes seconds, not minutes
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.head = nn.Conv3d(3, 4, 3, padding=1), ConvHead(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.conv(x)))

    scorer = ClipScorer(Tiny(), build_pooling("avg", num_classes=2), channels_last=False)
    clips = torch.randn(2, 3, 4, 8, 8)
    eager = scorer(clips)
    eager.sum().backward()
    grads = [p.grad.clone() for p in scorer.parameters() if p.grad is not None]
    scorer.zero_grad()
    compiled = torch.compile(scorer)(clips)
    compiled.sum().backward()
    assert torch.allclose(compiled, eager, atol=1e-5)
    for grad, p in zip(grads, scorer.parameters(), strict=True):
        assert p.grad is not None and torch.allclose(p.grad, grad, atol=1e-5)


@pytest.mark.slow
def test_training_with_bf16_and_channels_last_on_the_cpu(square_dataset, tmp_path):
    config = {
        "data": {"manifest": str(square_dataset), "prepare": {"size": 16}, "workers": 1},
        "sampler": {"clip_len": 8},
        "transforms": {"size": 16},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}},
        "train": {"epochs": 2, "batch_size": 2, "amp": "bf16", "channels_last": True},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    result = train(load_config(tmp_path / "run.yaml"), tmp_path / "run")
    assert result.epochs == 2
    for line in result.metrics:
        assert all(value == value for value in line.values())  # no NaN anywhere
    test = json.loads((tmp_path / "run" / "eval_test" / "metrics.json").read_text())
    assert test["loss"] == test["loss"] and 0 <= test["accuracy"] <= 1
