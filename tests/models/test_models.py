"""Video models: registry-wide checks, torchvision equivalence and exact dense scoring."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from vidfer.errors import CheckpointError, ConfigError
from vidfer.models import ResNet3D, VideoModel, build_model, resnet3d_18
from vidfer.registry import MODELS

NUM_CLASSES = 3
TINY = 0.125
# torchvision's S3D, MViT-V2-S and Swin3D-T have no width: tests/models/test_torchvision_video.py;
# Hugging Face's VideoMAE and TimeSformer neither: tests/models/test_hf_video.py.
WITHOUT_WIDTH = ("mvit_v2_s", "s3d", "swin3d_t", "timesformer", "videomae")

VARIANTS: dict[str, dict[str, Any]] = {
    "dense_padded": {},
    "dense_unpadded": {"temporal_padding": False},
    "strided_padded": {"temporal_stride": 2},
    "dense_max_dropout": {"spatial_pool": "max", "dropout_input": 0.1, "dropout_features": 0.5},
}


def _clip_length(model: VideoModel, wanted: int = 8) -> int:
    # Fixed-clip models take one clip; unpadded dense models need at least a receptive field
    # of frames (2 more give 3 output steps).
    if not model.geometry.dense:
        return model.geometry.receptive_field
    if model.geometry.padding == 0:
        return max(wanted, model.geometry.receptive_field + 2)
    return wanted


def _check_trains(model: VideoModel, frames: int) -> None:
    """Shape, finite scores and a finite gradient to every parameter."""
    model.train()
    scores = model(torch.randn(2, 3, frames, 32, 32))
    assert scores.shape == (2, NUM_CLASSES, model.geometry.output_length(frames))
    assert torch.isfinite(scores).all()
    scores.sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name


def _with_running_stats(model: VideoModel, frames: int, size: int) -> VideoModel:
    """The model in eval mode, after train-mode passes made its BatchNorm stats non-trivial."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, frames, size, size) * 2 + 0.5)
    return model.eval()


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n not in WITHOUT_WIDTH])
def test_every_registered_model_scores_and_trains(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES, width=TINY)
    _check_trains(model, _clip_length(model))


@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_resnet3d_variants_score_and_train(options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = build_model("resnet3d_18", NUM_CLASSES, width=TINY, **options)
    _check_trains(model, _clip_length(model))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, (35, 1, 17)),
        ({"temporal_padding": False}, (35, 1, 0)),
        ({"temporal_stride": 2}, (109, 8, 54)),
    ],
    ids=["dense_padded", "dense_unpadded", "strided_padded"],
)
def test_geometry_of_the_variants(options: dict[str, Any], expected: tuple[int, int, int]) -> None:
    geometry = resnet3d_18(NUM_CLASSES, width=TINY, **options).geometry
    assert (geometry.receptive_field, geometry.stride, geometry.padding) == expected
    assert geometry.dense


@pytest.mark.parametrize(
    ("options", "lengths"),
    [
        ({}, [1, 5, 8, 13]),
        ({"temporal_padding": False}, [35, 36, 41]),
        ({"temporal_stride": 2}, [1, 7, 8, 9, 17]),
    ],
    ids=["dense_padded", "dense_unpadded", "strided_padded"],
)
def test_output_length_matches_the_score_map(options: dict[str, Any], lengths: list[int]) -> None:
    model = resnet3d_18(NUM_CLASSES, width=TINY, **options).eval()
    with torch.no_grad():
        for frames in lengths:
            scores = model(torch.randn(1, 3, frames, 16, 16))
            assert scores.shape[-1] == model.geometry.output_length(frames), frames


@pytest.mark.parametrize(
    ("options", "frames", "steps"),
    [
        ({}, 64, [0, 30]),
        ({"temporal_padding": False}, 40, [0, 5]),
        ({"temporal_stride": 2}, 128, [0, 8]),
    ],
    ids=["dense_padded", "dense_unpadded", "strided_padded"],
)
def test_receptive_field_and_centre_frame_match_the_gradient(
    options: dict[str, Any], frames: int, steps: list[int]
) -> None:
    # The frames an output step depends on are those with a non-zero gradient: they must be its
    # geometric window (clipped to the video), centred on centre_frame.
    torch.manual_seed(0)
    model = resnet3d_18(NUM_CLASSES, width=TINY, **options).eval()
    geometry = model.geometry
    clip = torch.randn(1, 3, frames, 16, 16, requires_grad=True)
    scores = model(clip)  # (1, K, T')
    for step in steps:
        (gradient,) = torch.autograd.grad(scores[0, :, step].sum(), clip, retain_graph=True)
        seen = gradient.abs().sum(dim=(0, 1, 3, 4)).nonzero().flatten().tolist()  # frames
        start = step * geometry.stride - geometry.padding
        window = range(max(start, 0), min(start + geometry.receptive_field, frames))
        assert seen == list(window), step
        assert geometry.centre_frame(step) == start + (geometry.receptive_field - 1) / 2


@pytest.mark.parametrize("spatial_pool", ["avg", "max"])
def test_one_pass_equals_every_window_alone(spatial_pool: str) -> None:
    """The core claim: the dense unpadded model scores a video exactly like its windows."""
    torch.manual_seed(0)
    model = resnet3d_18(NUM_CLASSES, width=TINY, temporal_padding=False, spatial_pool=spatial_pool)
    window = model.geometry.receptive_field
    model = _with_running_stats(model, frames=window, size=32)
    with torch.no_grad():
        # Larger head weights than the default init, so that a mismatch cannot hide in tiny scores.
        torch.nn.init.normal_(model.head_parameters()[0], std=1.0)
        video = torch.randn(1, 3, 64, 32, 32)
        one_pass = model(video)  # (1, K, T')
        assert one_pass.shape[-1] == model.geometry.output_length(64) == 64 - window + 1
        for step in range(one_pass.shape[-1]):
            alone = model(video[:, :, step : step + window])  # (1, K, 1)
            assert alone.shape[-1] == 1
            assert model.geometry.centre_frame(step) == step + (window - 1) / 2
            difference = (one_pass[:, :, step] - alone[:, :, 0]).abs().max().item()
            assert difference <= 1e-4, (step, difference)


@pytest.fixture(scope="module")
def torchvision_r3d18(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A seeded torchvision r3d_18 with non-trivial BatchNorm, and its saved state dict."""
    torch.manual_seed(1)
    reference = torchvision.models.video.r3d_18(weights=None)
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "r3d_18.pt"
    torch.save(reference.state_dict(), path)
    return reference.eval(), path


def test_features_equal_torchvision_r3d18(
    torchvision_r3d18: tuple[torch.nn.Module, Path],
) -> None:
    reference, path = torchvision_r3d18
    model = resnet3d_18(num_classes=5, width=1.0, temporal_stride=2, pretrained=str(path)).eval()
    torch.manual_seed(2)
    clip = torch.randn(1, 3, 8, 56, 56)
    with torch.no_grad():
        expected = clip
        for stage in ("stem", "layer1", "layer2", "layer3", "layer4"):  # r3d_18 up to avgpool
            expected = getattr(reference, stage)(expected)
        features = model.forward_features(clip)
    assert features.shape == expected.shape == (1, 512, 1, 4, 4)
    assert (features - expected).abs().max().item() <= 1e-5


def test_pretrained_keys_that_do_not_match_are_listed(
    torchvision_r3d18: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    _, path = torchvision_r3d18
    state = torch.load(path, weights_only=True)
    state["renamed.weight"] = state.pop("layer1.0.conv1.0.weight")
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    with pytest.raises(CheckpointError, match=r"layer1\.0\.conv1\.0\.weight.*renamed\.weight"):
        resnet3d_18(5, pretrained=str(broken))


def test_pretrained_needs_full_width(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="width"):
        resnet3d_18(5, width=0.5, pretrained=str(tmp_path / "any.pt"))


def test_missing_pretrained_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pt"
    with pytest.raises(CheckpointError, match=re.escape(str(missing))):
        resnet3d_18(5, pretrained=str(missing))


@pytest.mark.parametrize("content", [b"not a checkpoint", None], ids=["garbage", "list"])
def test_unreadable_pretrained_file_is_a_checkpoint_error(
    content: bytes | None, tmp_path: Path
) -> None:
    path = tmp_path / "weights.pt"
    if content is None:
        torch.save([torch.zeros(1)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        resnet3d_18(5, pretrained=str(path))


def test_unpadded_needs_temporal_stride_one() -> None:
    with pytest.raises(ConfigError, match="temporal_padding=False"):
        resnet3d_18(5, width=TINY, temporal_stride=2, temporal_padding=False)


def test_unpadded_rejects_clips_shorter_than_the_receptive_field() -> None:
    model = resnet3d_18(5, width=TINY, temporal_padding=False)
    with pytest.raises(ConfigError, match="at least 35 frames"):
        model(torch.randn(1, 3, 34, 16, 16))


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"temporal_stride": 3}, "temporal_stride"),
        ({"width": 0.0}, "width"),
        ({"spatial_pool": "median"}, "spatial_pool"),
        ({"dropout_features": 1.0}, "dropout_features"),
        ({"colour": True}, "colour"),
    ],
)
def test_invalid_options_name_the_option(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        build_model("resnet3d_18", 5, **options)


def test_unknown_model_lists_the_known_names() -> None:
    with pytest.raises(ConfigError, match="resnet3d_18"):
        build_model("resnet3d_1000", 5)


def test_head_and_backbone_parameters_partition_the_model() -> None:
    model = resnet3d_18(5, width=TINY)
    assert isinstance(model, ResNet3D)
    head = model.head_parameters()
    assert [tuple(p.shape) for p in head] == [(5, 64, 1, 1, 1), (5,)]
    assert len(head) + len(model.backbone_parameters()) == len(list(model.parameters()))


def test_width_scales_the_channels_with_torchvision_names() -> None:
    state = resnet3d_18(5, width=TINY).state_dict()
    assert state["stem.0.weight"].shape == (8, 3, 3, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (16, 8, 1, 1, 1)
    assert state["layer4.1.conv2.0.weight"].shape == (64, 64, 3, 3, 3)
    assert not any(key.endswith("conv1.0.bias") for key in state)  # no conv bias
