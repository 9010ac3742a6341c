"""The model zoo: published parameter counts, torchvision equivalence and temporal geometry."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from vidfer.errors import ConfigError
from vidfer.models import VideoModel, build_model, r2plus1d_18

K = 7
TINY = 0.125
FULL_WIDTH = ("resnext3d_101", "r2plus1d_18", "c3d", "i3d_vgg16")


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def full_width() -> dict[str, VideoModel]:
    """Every full-width model, built once on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        return {name: build_model(name, K) for name in FULL_WIDTH}


def _backbone(model: VideoModel) -> int:
    return _count(model) - sum(p.numel() for p in model.head_parameters())


def test_resnext3d_101_has_hara_parameter_count(full_width: dict[str, VideoModel]) -> None:
    # Hara's resnext101: stem 7x7x7 conv + BN, then bottlenecks (1x1x1, 32-grouped 3x3x3,
    # 1x1x1, 3 BNs; a 1x1x1 conv + BN shortcut on the first block of each layer).
    expected, in_planes = 3 * 64 * 343 + 2 * 64, 64
    for planes, blocks in zip((128, 256, 512, 1024), (3, 4, 23, 3), strict=True):
        out = 2 * planes
        for block in range(blocks):
            expected += in_planes * planes + planes * (planes // 32) * 27 + planes * out
            expected += 2 * (2 * planes + out)
            if block == 0:
                expected += in_planes * out + 2 * out
            in_planes = out
    assert _backbone(full_width["resnext3d_101"]) == expected == 47_521_216  # thesis: "47M"
    assert _count(full_width["resnext3d_101"]) == expected + 2048 * K + K


def test_r2plus1d_18_has_torchvision_parameter_count(full_width: dict[str, VideoModel]) -> None:
    with torch.device("meta"):
        reference = torchvision.models.video.r2plus1d_18(weights=None)
    assert _backbone(full_width["r2plus1d_18"]) == _count(reference) - _count(reference.fc)


def test_c3d_has_tran_parameter_count(full_width: dict[str, VideoModel]) -> None:
    channels = (3, 64, 128, 256, 256, 512, 512, 512, 512)
    convs = sum(c_in * c_out * 27 + c_out for c_in, c_out in itertools.pairwise(channels))
    fcs = 512 * 4 * 4 * 4096 + 4096 + 4096 * 4096 + 4096  # fc6 reads a 512x1x4x4 pool5
    assert _backbone(full_width["c3d"]) == convs + fcs == 77_995_776
    assert _count(full_width["c3d"]) == convs + fcs + 4096 * K + K


def test_i3d_vgg16_has_inflated_vgg16_conv_count(full_width: dict[str, VideoModel]) -> None:
    # Every 3x3 kernel becomes 3x3x3 (3 times the weights); the thesis's 164M also counts
    # VGG-Face's 2D fc6 and fc7 (about 120M), which this fully convolutional model drops.
    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features
    convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    weights = sum(conv.weight.numel() for conv in convs)
    biases = sum(conv.out_channels for conv in convs)
    head = 512 * 128 + 128 + 128 * K + K
    assert _count(full_width["i3d_vgg16"]) == 3 * weights + biases + head == 44_202_183


@pytest.fixture(scope="module")
def torchvision_r2plus1d() -> nn.Module:
    """A seeded torchvision r2plus1d_18 with non-trivial BatchNorm, in eval mode."""
    torch.manual_seed(1)
    reference = torchvision.models.video.r2plus1d_18(weights=None)
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return reference.eval()


def test_r2plus1d_18_features_equal_torchvision(torchvision_r2plus1d: nn.Module) -> None:
    state = {k: v for k, v in torchvision_r2plus1d.state_dict().items() if not k.startswith("fc.")}
    model = r2plus1d_18(5, temporal_stride=2)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and sorted(missing) == [
        "head.classifier.bias",
        "head.classifier.weight",
    ]
    model.eval()
    torch.manual_seed(2)
    clip = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        expected = clip
        for stage in ("stem", "layer1", "layer2", "layer3", "layer4"):  # up to avgpool
            expected = getattr(torchvision_r2plus1d, stage)(expected)
        features = model.forward_features(clip)
    assert features.shape == expected.shape == (1, 512, 1, 2, 2)
    assert (features - expected).abs().max().item() <= 1e-5


GEOMETRIES: dict[str, tuple[str, dict[str, Any], tuple[int, int, int]]] = {
    "resnext_dense": ("resnext3d_101", {}, (75, 1, 37)),
    "resnext_strided": ("resnext3d_101", {"temporal_stride": 2}, (489, 16, 244)),
    "r2plus1d_dense": ("r2plus1d_18", {}, (35, 1, 17)),
    "r2plus1d_strided": ("r2plus1d_18", {"temporal_stride": 2}, (109, 8, 54)),
    "i3d_vgg16": ("i3d_vgg16", {}, (27, 1, 13)),
    "i3d_mini_xception": ("i3d_mini_xception", {}, (21, 1, 10)),
    "c3d": ("c3d", {}, (16, 16, 0)),
}


@pytest.mark.parametrize(("name", "options", "expected"), GEOMETRIES.values(), ids=GEOMETRIES)
def test_geometry_and_output_length(
    name: str, options: dict[str, Any], expected: tuple[int, int, int]
) -> None:
    model = build_model(name, K, width=TINY, **options).eval()
    geometry = model.geometry
    assert (geometry.receptive_field, geometry.stride, geometry.padding) == expected
    assert geometry.dense == (name != "c3d")
    with torch.no_grad():
        for frames in (16, 17, 33):
            scores = model(torch.randn(1, 3, frames, 32, 32))
            assert scores.shape == (1, K, geometry.output_length(frames)), frames


@pytest.mark.parametrize(
    ("name", "options", "frames", "steps"),
    [
        ("r2plus1d_18", {}, 48, [0, 20]),
        ("r2plus1d_18", {"temporal_padding": False}, 48, [0, 5]),
        ("i3d_vgg16", {}, 40, [0, 20]),
        ("c3d", {}, 40, [0, 1]),
        ("c3d", {"dense": True, "in_size": 32}, 30, [0, 9]),
    ],
)
def test_receptive_field_matches_the_gradient(
    name: str, options: dict[str, Any], frames: int, steps: list[int]
) -> None:
    torch.manual_seed(0)
    model = build_model(name, K, width=TINY, **options).eval()
    geometry = model.geometry
    clip = torch.randn(1, 3, frames, 32, 32, requires_grad=True)
    scores = model(clip)  # (1, K, T')
    for step in steps:
        (gradient,) = torch.autograd.grad(scores[0, :, step].sum(), clip, retain_graph=True)
        seen = gradient.abs().sum(dim=(0, 1, 3, 4)).nonzero().flatten().tolist()  # frames
        start = step * geometry.stride - geometry.padding
        window = range(max(start, 0), min(start + geometry.receptive_field, frames))
        assert seen == list(window), step


def test_c3d_scores_each_window_alone() -> None:
    torch.manual_seed(0)
    model = build_model("c3d", K, width=TINY, in_size=32).eval()
    video = torch.randn(1, 3, 35, 32, 32)
    with torch.no_grad():
        scores = model(video)  # (1, K, 2): frames 32-34 are not a whole window
        for step in range(2):
            alone = model(video[:, :, 16 * step : 16 * step + 16])  # (1, K, 1)
            assert (scores[:, :, step] - alone[:, :, 0]).abs().max().item() <= 1e-5


def _one_pass_and_windows(model: VideoModel, video: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A dense unpadded model's one-pass score map of ``video`` ``(1, C, T, H, W)``, and the
    same steps from each window of its receptive field scored alone, both ``(1, K, T')``."""
    window = model.geometry.receptive_field
    with torch.no_grad():
        # Larger head weights than the default init, so that a mismatch cannot hide in tiny scores.
        torch.nn.init.normal_(model.head_parameters()[0], std=1.0)
        one_pass = model(video)  # (1, K, T')
        steps = video.shape[2] - window + 1
        assert one_pass.shape[-1] == model.geometry.output_length(video.shape[2]) == steps
        alone = [model(video[:, :, step : step + window]) for step in range(steps)]  # (1, K, 1)
    return one_pass, torch.cat(alone, dim=2)


def test_dense_c3d_one_pass_equals_every_window_alone() -> None:
    torch.manual_seed(0)
    model = build_model("c3d", K, width=TINY, in_size=32, dense=True).eval()
    geometry = model.geometry
    assert (geometry.receptive_field, geometry.stride, geometry.padding) == (21, 1, 0)
    assert geometry.exact_windows
    one_pass, windows = _one_pass_and_windows(model, torch.randn(1, 3, 33, 32, 32))
    difference = (one_pass - windows).abs().max().item()
    print(f"dense c3d one pass vs 21-frame windows: max difference {difference:.3g}")
    assert difference <= 1e-5


def test_dense_unpadded_r2plus1d_one_pass_equals_every_window_alone() -> None:
    torch.manual_seed(0)
    model = r2plus1d_18(K, width=TINY, temporal_padding=False)
    geometry = model.geometry
    assert (geometry.receptive_field, geometry.stride, geometry.padding) == (35, 1, 0)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial BatchNorm statistics
            model(torch.randn(2, 3, 35, 32, 32) * 2 + 0.5)
    one_pass, windows = _one_pass_and_windows(model.eval(), torch.randn(1, 3, 41, 32, 32))
    difference = (one_pass - windows).abs().max().item()
    print(f"r2plus1d_18 one pass vs 35-frame windows: max difference {difference:.3g}")
    assert difference <= 1e-4


def test_dense_c3d_needs_its_receptive_field() -> None:
    with pytest.raises(ConfigError, match="at least 21 frames"):
        build_model("c3d", K, width=TINY, in_size=32, dense=True)(torch.randn(1, 3, 20, 32, 32))


@pytest.mark.parametrize(
    ("name", "options", "option"),
    [
        ("resnext3d_101", {"temporal_stride": 3}, "temporal_stride"),
        ("r2plus1d_18", {"width": 0.0}, "width"),
        ("c3d", {"in_size": 16}, "in_size"),
        ("i3d_vgg16", {"time_kernel": 2}, "time_kernel"),
        ("c3d", {"temporal_stride": 2}, "temporal_stride"),
    ],
)
def test_invalid_options_name_the_option(name: str, options: dict[str, Any], option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        build_model(name, K, **options)


def test_c3d_needs_a_whole_window() -> None:
    with pytest.raises(ConfigError, match="16 frames"):
        build_model("c3d", K, width=TINY)(torch.randn(1, 3, 15, 32, 32))
