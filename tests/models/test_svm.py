"""One-vs-rest SVMs: fitted by scikit-learn, exported to a torch head that scores identically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidfer.errors import ConfigError
from vidfer.models.svm import SVMHead, _decisions, _fit_binary, fit_svm


def blobs(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs in 6 dimensions whose class shifts the first two."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, 6))
    x[:, 0] += 2.5 * np.cos(2 * np.pi * y / classes)
    x[:, 1] += 2.5 * np.sin(2 * np.pi * y / classes)
    return x, y


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("classes", [2, 4])
def test_head_reproduces_sklearn_and_calibrates(kernel: str, classes: int) -> None:
    x, y = blobs(80, classes, 0)
    vx, vy = blobs(40, classes, 1)
    fit = fit_svm(kernel, x, y, classes, val=(vx, vy))  # type: ignore[arg-type]
    models = _fit_binary(kernel, x, y, classes, fit.C, fit.gamma)  # type: ignore[arg-type]
    ours = fit.head.decision(torch.from_numpy(vx).float()).numpy()
    np.testing.assert_allclose(ours, _decisions(models, vx), atol=1e-4)
    # The chosen grid point has the best validation accuracy, then the smallest hinge loss.
    assert fit.selection == "validation"
    chosen = next(row for row in fit.grid if row[:2] == (fit.C, fit.gamma))
    assert chosen[2] == max(row[2] for row in fit.grid)
    assert chosen[3] == min(row[3] for row in fit.grid if row[2] == chosen[2])
    probabilities = fit.head(torch.from_numpy(vx).float()).exp().numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == vy))
    assert accuracy > 0.8
    # Calibration keeps the decision ranking's winner almost everywhere.
    agree = np.mean(probabilities.argmax(axis=1) == ours.argmax(axis=1))
    assert agree > 0.9


def test_head_state_round_trip_and_cross_validation() -> None:
    x, y = blobs(60, 3, 2)
    fit = fit_svm("rbf", x, y, 3, C=[1.0], gamma_scale=[1.0])
    assert fit.selection == "cross-validation" and len(fit.grid) == 1
    state = fit.head.state_dict()
    again = SVMHead.from_state(state)
    again.load_state_dict(state)
    inputs = torch.from_numpy(x).float()
    torch.testing.assert_close(again(inputs), fit.head(inputs))


def test_missing_class_is_refused() -> None:
    x, y = blobs(30, 3, 3)
    with pytest.raises(ConfigError, match=r"classes \[3\] have no training video"):
        fit_svm("linear", x, y, 4)
