"""The PyTorch port of fer's Keras mini-Xception matches Keras's own outputs."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from vidfer.assets import fetch_assets
from vidfer.errors import AssetError
from vidfer.models.mini_xception import (
    FER2013_CLASSES,
    MiniXception,
    _same_padding,
    load_mini_xception,
    preprocess,
)

from helpers import FIXTURES

FIXTURE = FIXTURES / "mini_xception_keras.npz"


@functools.cache
def model() -> MiniXception:
    fetch_assets(["fer_mini_xception"])
    return load_mini_xception()


def test_port_matches_keras_outputs() -> None:
    """Fixture recorded by scripts/record_mini_xception_fixture.py with Keras 3 (torch backend)."""
    recorded = np.load(FIXTURE)
    x = preprocess(recorded["images"])  # 4 random images + 2 carphone face crops
    with torch.no_grad():
        logits = model()(x).numpy()
        probs = model().predict_proba(x).numpy()
    np.testing.assert_allclose(logits, recorded["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(probs, recorded["probs"], atol=1e-4, rtol=0)


def test_shapes_and_probabilities() -> None:
    x = preprocess(np.random.default_rng(1).integers(0, 256, (3, 64, 64), dtype=np.uint8))
    with torch.no_grad():
        probs = model().predict_proba(x)
        features = model().forward_features(x)
    assert probs.shape == (3, len(FER2013_CLASSES)) and features.shape == (3, 128)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(3))
    assert model().classes == FER2013_CLASSES
    assert FER2013_CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_preprocess_matches_fer_scaling() -> None:
    x = preprocess(np.array([[[0, 255]]], np.uint8))
    assert x.shape == (1, 1, 1, 2)
    torch.testing.assert_close(x.flatten(), torch.tensor([-1.0, 1.0]))


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [(60, 3, 2, (0, 1)), (15, 3, 2, (1, 1)), (60, 1, 2, (0, 0)), (64, 3, 1, (1, 1))],
)
def test_tensorflow_same_padding(size: int, kernel: int, stride: int, expected: tuple) -> None:
    assert _same_padding(size, kernel, stride) == expected


def test_missing_file_is_an_asset_error(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="no such Keras model file"):
        load_mini_xception(tmp_path / "nope.hdf5")


def test_a_forward_pass_drops_each_activation_after_its_last_reader() -> None:
    """The graph's values are freed as it runs: when the layer of the logits runs, the only
    earlier output still held is its input (a batch holds a few activations, not all)."""
    net = model()
    outputs: dict[str, weakref.ref[torch.Tensor]] = {}
    alive: list[list[str]] = []
    last = next(node for node in net.nodes if node.name == net.logits_name)

    def keep(name: str) -> Callable[..., None]:
        return lambda module, args, out: outputs.__setitem__(name, weakref.ref(out))

    def count(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        alive.append([name for name, ref in outputs.items() if ref() is not None])

    handles = [net.layers[node.name].register_forward_hook(keep(node.name)) for node in net.nodes]
    handles.append(net.layers[last.name].register_forward_pre_hook(count))
    try:
        with torch.no_grad():
            net(preprocess(np.zeros((2, 64, 64), np.uint8)))
    finally:
        for handle in handles:
            handle.remove()
    assert len(outputs) == net.nodes.index(last) + 1 > 20
    assert alive == [list(last.inputs)]
