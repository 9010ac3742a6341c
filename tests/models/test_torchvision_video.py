"""torchvision's other video models in the zoo: MC3-18, S3D, MViT-V2-S and Swin3D-T.

The equivalence tests plant a seeded, perturbed torchvision state dict where torchvision caches
the published file (under a temporary ``TORCH_HOME``), load it with ``model.weights:
KINETICS400_V1``, copy torchvision's classifier into vidfer's head and compare class scores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torchvision.models import video

from vidfer.config import ModelConfig
from vidfer.errors import ConfigError
from vidfer.models import VideoModel, build_model, mc3_18, model_from_config
from vidfer.models.weights import published_names

K = 5
TINY = 0.125

# name: (torchvision builder, weights enum, classifier prefix, clip (T, size), vidfer options).
# Small clips: torchvision's S3D needs 2 x 7 x 7 feature positions for its average pool, MViT
# takes 16 x 224 x 224 only; Swin3D's 4 x 64 x 64 leaves 2 x 2 x 2 positions to average.
CASES: dict[str, tuple[Any, str, str, tuple[int, int], dict[str, Any]]] = {
    "mc3_18": (video.mc3_18, "MC3_18_Weights", "fc", (8, 56), {}),
    "s3d": (video.s3d, "S3D_Weights", "classifier.1", (16, 224), {}),
    "swin3d_t": (
        video.swin3d_t,
        "Swin3D_T_Weights",
        "head",
        (2, 32),
        {"clip_len": 2, "in_size": 32},
    ),
    "mvit_v2_s": (video.mvit_v2_s, "MViT_V2_S_Weights", "head.1", (16, 224), {}),
}


def _plant(torch_home: Path, name: str) -> torch.nn.Module:
    """torchvision's model, seeded and perturbed, saved where torchvision caches the file."""
    build, enum_name, *_ = CASES[name]
    torch.manual_seed(3)
    reference = build(weights=None, num_classes=K)
    with torch.no_grad():
        for parameter in reference.parameters():
            if parameter.unique().numel() == 1:  # no zero bias or identity norm is left
                parameter.add_(0.05 * torch.randn_like(parameter))
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    entry = getattr(video, enum_name).KINETICS400_V1
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), folder / os.path.basename(entry.url))
    return reference.eval()


@pytest.mark.parametrize("name", list(CASES))
def test_published_name_loads_and_scores_like_torchvision(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("VIDFER_OFFLINE", "1")  # a missing file must fail, never download
    reference = _plant(tmp_path, name)
    _, _, classifier, (frames, size), options = CASES[name]
    config = ModelConfig(name=name, params=options, weights="KINETICS400_V1")
    model = model_from_config(config, num_classes=K).eval()
    published = reference.state_dict()
    ours = model.state_dict()
    for key, value in published.items():
        if not key.startswith(classifier):
            assert torch.equal(ours[key], value), key
    with torch.no_grad():  # torchvision's classifier (linear or 1x1x1) as vidfer's 1x1x1 conv
        head = model.head_parameters()
        head[0].copy_(published[f"{classifier}.weight"].reshape(head[0].shape))
        head[1].copy_(published[f"{classifier}.bias"])
        torch.manual_seed(4)
        clip = torch.randn(1, 3, frames, size, size)
        expected = reference(clip)  # (1, K)
        scores = model(clip)  # (1, K, T'): one step per frame for MC3, one clip otherwise
    assert scores.shape[:2] == (1, K)
    difference = (scores.mean(dim=2) - expected).abs().max().item()  # average temporal pooling
    size = expected.abs().max().item()
    print(f"{name}: max |vidfer - torchvision| = {difference:.3g} (max |score| {size:.3g})")
    assert difference <= 1e-5


def test_mc3_is_dense_and_unpadded_scores_every_window_exactly() -> None:
    torch.manual_seed(0)
    assert mc3_18(K).geometry.padding == 5  # stem and layer 1: 5 temporal convs of 3 frames
    model = mc3_18(K, width=TINY, temporal_padding=False)
    geometry = model.geometry
    assert (geometry.receptive_field, geometry.stride, geometry.padding) == (11, 1, 0)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial BatchNorm statistics
            model(torch.randn(2, 3, 11, 32, 32) * 2 + 0.5)
    model.eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.head_parameters()[0], std=1.0)
        clip = torch.randn(1, 3, 24, 32, 32)
        one_pass = model(clip)  # (1, K, T')
        assert one_pass.shape[-1] == geometry.output_length(24) == 24 - 11 + 1
        windows = torch.cat(
            [model(clip[:, :, step : step + 11]) for step in range(one_pass.shape[-1])], dim=2
        )  # (1, K, T'), each window alone
    difference = (one_pass - windows).abs().max().item()
    print(f"mc3_18 one pass vs windows: max difference {difference:.3g}")
    assert difference <= 1e-4


def test_mc3_has_torchvision_parameter_names_and_count() -> None:
    with torch.device("meta"):
        reference = video.mc3_18(num_classes=K)
        model = build_model("mc3_18", K)
    theirs = {k: v.shape for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    ours = {k: v.shape for k, v in model.state_dict().items() if not k.startswith("head.")}
    assert ours == theirs


def test_clips_are_scored_one_by_one() -> None:
    torch.manual_seed(0)
    model = build_model("swin3d_t", K, clip_len=2, in_size=32).eval()
    assert not model.geometry.dense
    video_clip = torch.randn(1, 3, 5, 32, 32)
    with torch.no_grad():
        scores = model(video_clip)  # two clips of 2 frames, the last frame ignored
        assert scores.shape == (1, K, model.geometry.output_length(5)) == (1, K, 2)
        for step in range(2):
            alone = model(video_clip[:, :, 2 * step : 2 * step + 2])  # (1, K, 1)
            torch.testing.assert_close(scores[:, :, step], alone[:, :, 0])


@pytest.mark.parametrize(
    ("name", "options"),
    [("s3d", {"clip_len": 8, "in_size": 32}), ("swin3d_t", CASES["swin3d_t"][4])],
)
def test_small_clips_train(name: str, options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model: VideoModel = build_model(name, K, **options).train()
    frames = model.geometry.receptive_field
    scores = model(torch.randn(2, 3, frames, options["in_size"], options["in_size"]))
    assert scores.shape == (2, K, 1)
    scores.sum().backward()
    for key, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), key


@pytest.mark.parametrize(
    ("name", "options", "option"),
    [
        ("mvit_v2_s", {"clip_len": 8}, "clip_len=8"),
        ("mvit_v2_s", {"in_size": 112}, "in_size=112"),
        ("s3d", {"clip_len": 12}, "clip_len=12"),
        ("s3d", {"in_size": 100}, "in_size=100"),
        ("swin3d_t", {"clip_len": 3}, "clip_len=3"),
        ("swin3d_t", {"in_size": 0}, "in_size=0"),
    ],
)
def test_a_clip_size_the_model_cannot_take_is_named(
    name: str, options: dict[str, Any], option: str
) -> None:
    with pytest.raises(ConfigError, match=option):
        build_model(name, K, **options)


def test_a_clip_of_another_size_is_named() -> None:
    model = build_model("swin3d_t", K, clip_len=2, in_size=32)
    with pytest.raises(ConfigError, match="in_size=32"):
        model(torch.randn(1, 3, 2, 64, 64))
    with pytest.raises(ConfigError, match="clip_len=2, got 1 frames"):
        model(torch.randn(1, 3, 1, 32, 32))


def test_every_family_has_its_torchvision_weights() -> None:
    for name in CASES:
        assert "KINETICS400_V1" in published_names(name)
